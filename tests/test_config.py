"""Config schema: defaults, validation messages, overrides, env expansion, hashing, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from masktwins_bio.config import Config, apply_overrides, config_from_dict, load_config
from masktwins_bio.errors import ConfigError
from masktwins_bio.regions import parse_roi

MINIMAL = {"source": {"image": "s.zarr", "labels": "l.zarr"}, "target": {"image": "t.zarr"}}


def test_defaults_filled_in():
    cfg = config_from_dict(MINIMAL)
    assert cfg.method.name == "masktwins" and cfg.method.ema_alpha == 0.999
    assert cfg.method.confidence_threshold == 0.968 and cfg.model.name == "unet"
    assert cfg.resolved()["train"]["steps"] == cfg.train.steps


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stepz=3", r"unknown key 'train.stepz' \(did you mean 'train.steps'\?\)"),
        ("methd.name=mic", r"unknown key 'methd' \(did you mean 'method'\?\)"),
        ("train.steps=abc", r"train.steps: expected a valid integer"),
        ("train.steps=0", r"train.steps: expected greater than 0"),
        ("method.name=foo", r"method.name: expected 'source_only', .* or 'masktwins', got 'foo'"),
        ("method.keep_ratio=1.0", r"method.keep_ratio: expected less than 1"),
        ("method.keep_ratio=0", r"method.keep_ratio: expected greater than 0"),
        ("source.voxel_size=[0,4,4]", r"source.voxel_size: all three voxel_size values must be > 0"),
        ("data.patch_size=[8,64]", r"data.patch_size: 2 values given, expected at least 3 \(z, y, x for sizes\)"),
        ("source.voxel_size=[50,4.6]", r"source.voxel_size: 2 values given, expected at least 3"),  # was "missing key"
        ("method.mask_block=[32,8,8]", r"mask_block \[32, 8, 8\] is larger than data.patch_size"),
        ("train.device=gpu", r"train.device: must be auto, cpu, cuda or cuda:N"),
        ("source.roi=1:2", r"roi '1:2' must have three comma-separated ranges"),
    ],
)
def test_invalid_values_one_line(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        config_from_dict(apply_overrides(MINIMAL, [override]), "cfg.yaml")
    assert "\n" not in str(e.value) and str(e.value).startswith("cfg.yaml")


def test_missing_required_key():
    with pytest.raises(ConfigError, match="missing required key 'target'"):
        config_from_dict({"source": {"image": "x"}})


def test_overrides_parse_yaml_values():
    data = apply_overrides(MINIMAL, ["train.steps=7", "data.patch_size=[8, 32, 32]", "method.name=mic",
                                     "train.amp=none"])
    cfg = config_from_dict(data)
    assert cfg.train.steps == 7 and cfg.data.patch_size == (8, 32, 32) and cfg.method.name == "mic"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(MINIMAL, ["train.steps"])


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("MT_ROOT", "/data/em")
    cfg = config_from_dict({**MINIMAL, "data_root": "${MT_ROOT}"})
    assert cfg.resolve_path("vnc/raw") == "/data/em/vnc/raw"
    assert cfg.resolve_path("/abs/x.h5:/raw") == "/abs/x.h5:/raw"
    monkeypatch.delenv("MT_ROOT")
    assert config_from_dict({**MINIMAL, "data_root": "${MT_ROOT:-fallback}"}).data_root == "fallback"
    with pytest.raises(ConfigError, match="environment variable MT_ROOT is not set"):
        config_from_dict({**MINIMAL, "data_root": "${MT_ROOT}"})


def test_hash_stable_and_sensitive():
    a, b = config_from_dict(MINIMAL), config_from_dict(MINIMAL)
    assert a.hash() == b.hash() and len(a.hash()) == 16
    assert a.hash() != config_from_dict(apply_overrides(MINIMAL, ["train.steps=3"])).hash()


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ is not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "code.yaml").write_text("source: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError):  # safe_load refuses to construct Python objects
        load_config(tmp_path / "code.yaml")


def test_parse_roi():
    assert parse_roi("0:4, :, 10:") == (slice(0, 4), slice(None), slice(10, None))
    assert parse_roi("3, 1:2, :") == (slice(3, 4), slice(1, 2), slice(None))


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_configs_validate(path, monkeypatch):
    monkeypatch.setenv("MASKTWINS_DATA_ROOT", "/data")
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert yaml.safe_load(cfg.to_yaml()) == cfg.resolved()
