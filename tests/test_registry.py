"""The registries are the one list of method and network names: the config, the builders, the ladder and the napari
menu all read them, and a variant registered later is accepted everywhere."""

from __future__ import annotations

import pytest
import torch

from masktwins_bio.config import Config, MethodConfig, ModelConfig, config_from_dict
from masktwins_bio.errors import ConfigError
from masktwins_bio.registry import METHODS, NETWORKS, Registry


@pytest.fixture
def scratch_methods(monkeypatch):
    """Registrations made by a test are forgotten after it."""
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    return METHODS


@pytest.mark.parametrize("name", METHODS.names())
def test_every_builtin_method_resolves_to_its_class(name):
    from masktwins_bio.methods import UDAMethod

    cls = METHODS[name]
    assert issubclass(cls, UDAMethod) and cls.name == name


@pytest.mark.parametrize("name", NETWORKS.names())
def test_every_builtin_network_builds_and_divides(name):
    from masktwins_bio.models import build_network, required_divisor

    cfg = ModelConfig(name=name, channels=(4, 8, 16))
    div = required_divisor(cfg, (40, 8, 8), (8, 32, 32))
    assert NETWORKS[name].name == name and len(div) == 3
    shape = tuple(max(d, s) for d, s in zip(div, (8, 32, 32)))
    out = build_network(cfg, (40, 8, 8), shape)(torch.zeros(1, 1, *shape))
    assert out.shape == (1, 2, *shape)


@pytest.mark.parametrize("section, key", [(MethodConfig, "method.name"), (ModelConfig, "model.name")])
def test_the_config_refuses_an_unregistered_name_listing_the_registered_ones(section, key):
    with pytest.raises(ValueError, match="expected 'source_only', |expected 'unet', "):
        section(name="nope")
    with pytest.raises(ConfigError, match=rf"{key}: expected '\w+', .* or '\w+', got 'nope'$"):
        config_from_dict({"source": {"image": "s.zarr", "labels": "l.zarr"}, "target": {"image": "t.zarr"},
                          key.split(".")[0]: {"name": "nope"}})


def test_a_registered_variant_is_accepted_by_the_config_and_built(scratch_methods):
    from masktwins_bio.config import AugmentConfig
    from masktwins_bio.methods import MeanTeacher, build_method, register

    @register
    class Sharper(MeanTeacher):
        name = "sharper_teacher"

    cfg = config_from_dict({"source": {"image": "s.zarr", "labels": "l.zarr"}, "target": {"image": "t.zarr"},
                            "method": {"name": "sharper_teacher"}})
    assert isinstance(cfg, Config) and "sharper_teacher" in METHODS.names()
    assert isinstance(build_method(cfg.method, "softmax", AugmentConfig(), (8, 32, 32)), Sharper)


def test_a_name_clash_is_refused_and_a_builtin_may_register_itself():
    reg = Registry("thing.name", {"a": "masktwins_bio.registry:Registry"})
    reg.register(Registry, name="a")  # the object the built-in entry names: fine
    assert reg["a"] is Registry

    class Other:
        name = "a"

    with pytest.raises(ConfigError, match="thing.name 'a' is already registered"):
        reg.register(Other)
    with pytest.raises(ConfigError, match="thing.name 'b' is unknown; choose one of a"):
        reg["b"]


def test_the_napari_menu_and_the_ladder_follow_the_registry(scratch_methods):
    from masktwins_bio.methods import MeanTeacher, register
    from masktwins_bio.napari._widgets.adapt import method_choices

    @register
    class Extra(MeanTeacher):
        name = "extra_teacher"

    names = [n for _, n in method_choices()]
    assert names[0] == "masktwins" and "extra_teacher" in names and "masktwins_random_pair" not in names
