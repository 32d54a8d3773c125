"""``masktwins-bio demo`` end to end at a tiny budget (the full-size demo is timed in BENCHMARKS.md, not here)."""

from __future__ import annotations

import json

import pytest

from masktwins_bio.cli import main


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--size", "small", "--steps", "4", "--adapt-steps", "2",
                 "--device", "cpu", "--no-progress"]) == 0
    return out


def test_demo_writes_table_figure_and_models(demo_dir):
    results = json.loads((demo_dir / "demo_results.json").read_text())
    assert set(results) == {"source-only", "MaskTwins"}
    for r in results.values():
        assert {"IoU", "F1", "MCC", "AP", "inst AP50"} <= set(r["metrics"])
    assert results["MaskTwins"]["adapted_from"] == results["source-only"]["model"]
    assert "| MaskTwins |" in (demo_dir / "demo_results.md").read_text()
    assert (demo_dir / "demo_figure.png").stat().st_size > 10_000
    assert (demo_dir / "runs" / "masktwins" / "model.pt").exists()


def test_demo_outputs_open_in_the_napari_reader(demo_dir):
    """README: the adapted prediction opens in napari with the plugin's reader."""
    reader_mod = pytest.importorskip("masktwins_bio.napari._reader")
    pred = demo_dir / "predictions" / "masktwins"
    for path, layer_type in ((demo_dir / "data" / "target" / "raw.zarr", "image"),
                             (pred / "probability.zarr", "image"), (pred / "instances.zarr", "labels")):
        reader = reader_mod.get_reader(str(path))
        assert reader is not None, path
        assert reader(str(path))[0][2] == layer_type


def test_the_demo_model_as_a_bioimageio_package_passes_and_predicts_the_same(demo_dir, tmp_path):
    """Issue 15's acceptance: the demo's adapted model exported to bioimage.io passes bioimageio.core's model test,
    and predicting with the package equals predicting with the model.pt."""
    core = pytest.importorskip("bioimageio.core")
    import numpy as np
    import zarr

    from masktwins_bio.bioimageio import export_bioimageio
    from masktwins_bio.inference import predict

    model = demo_dir / "runs" / "masktwins" / "model.pt"
    package = export_bioimageio(model, tmp_path / "demo.zip", authors=["Demo"])
    summary = core.test_model(package)
    assert summary.status == "passed", [d.name for d in summary.details if d.status != "passed"]
    image = demo_dir / "data" / "target" / "raw.zarr"
    outs = [predict(m, image, tmp_path / f"{name}.zarr", progress=False, device="cpu")
            for name, m in (("pt", model), ("zip", package))]
    np.testing.assert_array_equal(*(zarr.open_group(str(o))["0"][:] for o in outs))


def test_demo_refuses_unknown_size(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path / "d"), "--size", "huge"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "huge" in err and "tiny" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()
