"""bioimage.io packages: export validated by bioimageio.core's own test, read back exactly by load_model, predict
and the GUI checks; refusals of what cannot be exported or read."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml

from masktwins_bio.config import ModelConfig
from masktwins_bio.errors import InputError
from masktwins_bio.models import build_network, check_model_file, export_model, load_model

pytest.importorskip("bioimageio.spec")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from masktwins_bio.bioimageio import export_bioimageio

    out = tmp_path_factory.mktemp("bioimageio") / "starter.zip"
    return export_bioimageio("starter", out, authors=["Test Author"])


def _rdf(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return yaml.safe_load(zf.read("rdf.yaml"))


def test_the_package_passes_bioimageio_core_test(package):
    core = pytest.importorskip("bioimageio.core")
    summary = core.test_model(package)
    failed = [f"{d.name}: {d.errors[:1]}" for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed


def test_the_description_carries_voxel_size_tiles_normalisation_and_citations(package):
    rdf = _rdf(package)
    starter = load_model("starter")
    raw = rdf["inputs"][0]
    space = [a for a in raw["axes"] if a.get("type") == "space"]
    assert [a["id"] for a in space] == ["z", "y", "x"]
    assert [a["scale"] for a in space] == list(starter.voxel_size) and {a["unit"] for a in space} == {"nanometer"}
    assert [a["size"]["min"] for a in space] == list(starter.patch_size)
    assert any(p["id"] == "zero_mean_unit_variance" for p in raw["preprocessing"])
    out = rdf["outputs"][0]
    assert [c for a in out["axes"] if a.get("type") == "channel" for c in a["channel_names"]] == \
        ["background", "mitochondria"]
    assert out["postprocessing"][0]["id"] == "softmax"
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert (arch["import_from"], arch["callable"]) == ("monai.networks.nets", "UNet")
    assert "torchscript" in rdf["weights"]
    assert any("2507.12008" in c.get("url", "") for c in rdf["cite"])
    assert rdf["config"]["masktwins_bio"]["metadata"]["voxel_size"] == list(starter.voxel_size)
    assert rdf["authors"] == [{"name": "Test Author"}]


def test_the_monai_architecture_alone_reproduces_the_test_output(package, tmp_path):
    """A consumer without masktwins-bio: MONAI's class, the kwargs and the state dict give the packaged output."""
    import importlib

    rdf = _rdf(package)
    with zipfile.ZipFile(package) as zf:
        zf.extractall(tmp_path)
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    net = getattr(importlib.import_module(arch["import_from"]), arch["callable"])(**arch["kwargs"]).eval()
    net.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    x = np.load(tmp_path / "test_input.npy")
    x = (x - x.mean()) / (x.std() + 1e-6)
    with torch.no_grad():
        y = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(y, np.load(tmp_path / "test_output.npy"), atol=1e-5)


def test_load_model_reads_the_package_back_exactly(package, tmp_path):
    a, b = load_model("starter"), load_model(package)
    x = torch.randn(1, 1, *a.patch_size)
    with torch.no_grad():
        assert torch.equal(a.network(x), b.network(x))
    assert b.metadata == a.metadata and b.model_cfg == a.model_cfg
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(package) as zf:
        zf.extractall(folder)
    assert load_model(folder).metadata == a.metadata
    assert check_model_file(package) is None and check_model_file(folder) is None


def test_predict_with_the_package_equals_predict_with_the_model(package, tiny_pair, tmp_path):
    import zarr

    from masktwins_bio.inference import predict

    image = str(tiny_pair / "target.zarr")
    predict("starter", image, tmp_path / "pt.zarr", progress=False)
    predict(package, image, tmp_path / "zip.zarr", progress=False)
    a = zarr.open_group(str(tmp_path / "pt.zarr"))["0"][:]
    b = zarr.open_group(str(tmp_path / "zip.zarr"))["0"][:]
    np.testing.assert_array_equal(a, b)


def test_damaged_or_foreign_packages_are_refused(package, tmp_path):
    # the weights changed after export: the sha256 in the description no longer matches
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item, data[:-1] + bytes([data[-1] ^ 1]) if item.filename == "weights.pt" else data)
    with pytest.raises(InputError, match="does not match its sha256"):
        load_model(bad)
    # a bioimage.io package of another tool
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(foreign, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "rdf.yaml":
                rdf = yaml.safe_load(data)
                rdf.pop("config")
                data = yaml.safe_dump(rdf).encode()
            dst.writestr(item, data)
    with pytest.raises(InputError, match="not written by masktwins-bio"):
        load_model(foreign)
    assert "not written by masktwins-bio" in check_model_file(foreign)
    plain_zip = tmp_path / "photos.zip"
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("a.txt", "hello")
    with pytest.raises(InputError, match="not a bioimage.io package"):
        load_model(plain_zip)


def test_check_model_file_names_what_is_wrong(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    (tmp_path / "notes.pt").write_text("not a model")
    assert "not a masktwins-bio model" in check_model_file(tmp_path / "other.pt")
    assert "cannot be read as one safely" in check_model_file(tmp_path / "notes.pt")
    assert "weights_only=False" not in check_model_file(tmp_path / "notes.pt")
    assert "not found" in check_model_file(tmp_path / "missing.pt")
    assert check_model_file("starter") is None


def test_a_histogram_normalised_model_is_refused(tmp_path):
    from masktwins_bio.bioimageio import export_bioimageio

    cfg = ModelConfig(channels=[4, 8], num_res_units=0)
    net = build_network(cfg, (40, 8, 8), (8, 32, 32))
    model = export_model(net, tmp_path / "model.pt", cfg, {"voxel_size": [40, 8, 8], "patch_size": [8, 32, 32],
                                                            "normalization": {"mode": "histogram"}})
    with pytest.raises(InputError, match="histogram"):
        export_bioimageio(model, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_a_test_image_on_another_grid_is_resampled_and_a_small_one_refused(tmp_path):
    from masktwins_bio.bioimageio import export_bioimageio
    from masktwins_bio.io import write_ome_zarr

    rng = np.random.default_rng(0)
    image = write_ome_zarr(tmp_path / "img.zarr", rng.integers(0, 255, (8, 128, 128), dtype=np.uint8),
                           voxel_size=(80, 4, 4))  # 2x coarser in z, 2x finer in-plane than the starter's grid
    out = export_bioimageio("starter", tmp_path / "m.zip", test_image=str(image), torchscript=False)
    with zipfile.ZipFile(out) as zf:
        zf.extract("test_input.npy", tmp_path)
    assert np.load(tmp_path / "test_input.npy").shape == (1, 1, 16, 64, 64)
    with pytest.raises(InputError, match="patch size"):
        export_bioimageio("starter", tmp_path / "small.zip", test_image=np.zeros((4, 32, 32), np.float32))


def test_cli_exports_and_refuses_with_one_line(tmp_path):
    exe = [sys.executable, "-m", "masktwins_bio.cli"]
    out = tmp_path / "pkg.zip"
    proc = subprocess.run(exe + ["export-bioimageio", "starter", str(out), "--no-torchscript", "--author", "A B"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "torchscript" not in _rdf(out)["weights"]
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    for args, text in [([str(out)], "already exists"), ([str(tmp_path / "x.tar")], ".zip"),
                       ([str(tmp_path / "y.zip"), "--license", "free"], "SPDX")]:
        proc = subprocess.run(exe + ["export-bioimageio", "starter"] + args, capture_output=True, text=True)
        assert proc.returncode == 2 and text in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest  # the refused run left it alone
    assert not (tmp_path / "y.zip").exists()
