"""Tests of the synthetic EM-like domain generator and ``masktwins-bio sample-data``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from masktwins_bio.cli import main
from masktwins_bio.data import synthetic as S
from masktwins_bio.errors import InputError
from masktwins_bio.io import open_volume

TINY_EXTENT = tuple(s * v for s, v in zip(S.SIZES["tiny"], S.SOURCE_STYLE.voxel_size))


@pytest.fixture(scope="module")
def tiny_pair():
    return S.make_domain_pair("tiny", seed=0)


@pytest.fixture(scope="module")
def tiny_scene():
    return S.make_scene(TINY_EXTENT, seed=5)


def _touching_pairs(labels: np.ndarray) -> set:
    """Pairs of different instance ids that share a face."""
    pairs = set()
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)[:-1].ravel()
        b = np.moveaxis(labels, axis, 0)[1:].ravel()
        m = (a > 0) & (b > 0) & (a != b)
        pairs |= {tuple(sorted(p)) for p in zip(a[m].tolist(), b[m].tolist())}
    return pairs


# ------------------------------------------------------------------------------------------ in-memory pairs


def test_deterministic_by_seed(tiny_pair):
    again = S.make_domain_pair("tiny", seed=0)
    for key in ("source_image", "source_labels", "target_image", "target_labels"):
        np.testing.assert_array_equal(tiny_pair[key], again[key])
    other = S.make_domain_pair("tiny", seed=1)
    assert not np.array_equal(tiny_pair["source_image"], other["source_image"])


def test_shapes_dtypes_and_voxel_sizes(tiny_pair):
    p = tiny_pair
    assert p["source_image"].shape == p["source_labels"].shape == S.SIZES["tiny"]
    assert p["source_image"].dtype == np.uint8 and p["target_image"].dtype == np.uint8
    assert p["source_labels"].dtype == np.uint32 and p["target_labels"].dtype == np.uint32
    assert p["source_voxel_size"] == S.SOURCE_STYLE.voxel_size
    assert p["target_voxel_size"] == S.TARGET_STYLE.voxel_size
    # the target covers the same world extent on its own (different, less anisotropic) grid
    expected = tuple(round(e / v) for e, v in zip(TINY_EXTENT, S.TARGET_STYLE.voxel_size))
    assert p["target_image"].shape == p["target_labels"].shape == expected
    assert p["source_image"].std() > 10 and p["target_image"].std() > 10  # not blank


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_foreground_fraction_and_touching_instances(seed):
    p = S.make_domain_pair("tiny", seed=seed)
    for domain in ("source", "target"):
        fg = float((p[f"{domain}_labels"] > 0).mean())
        assert 0.03 <= fg <= 0.15, (domain, fg)
    # the first mitochondrion of every scene gets a touching partner: instance splitting matters
    assert _touching_pairs(p["source_labels"]) or _touching_pairs(p["target_labels"])


def test_touching_instances_in_demo_sized_scene():
    scene = S.make_scene((640.0, 1024.0, 1024.0), seed=0)
    assert scene.touching_pairs
    _, labels = S.render_scene(scene, S.SOURCE_STYLE, seed=0)
    assert len(_touching_pairs(labels)) >= 1


@pytest.mark.parametrize("seed", [0, 1])
def test_instance_ids_consecutive_and_one_object_each(seed):
    p = S.make_domain_pair("small", seed=seed)
    for key in ("source_labels", "target_labels"):
        labels = p[key]
        ids = np.unique(labels)
        assert ids[0] == 0 and np.array_equal(ids, np.arange(len(ids)))
        assert len(ids) >= 3
        # each id is one object: its largest 26-connected component holds (nearly) all of its voxels
        for i in ids[1:]:
            comp, n = ndimage.label(labels == i, structure=np.ones((3, 3, 3)))
            sizes = np.bincount(comp.ravel())[1:]
            assert sizes.max() >= 0.97 * sizes.sum(), (key, i, sizes)


def test_world_units_same_scene_on_two_grids(tiny_scene):
    """A scene is defined in nm: rendered on two voxel grids it gives the same objects and volume fraction."""
    img_a, lab_a = S.render_scene(tiny_scene, S.SOURCE_STYLE, seed=0)
    fine = S.DomainStyle(**{**S.SOURCE_STYLE.to_dict(), "voxel_size": (20.0, 4.0, 4.0)})
    img_b, lab_b = S.render_scene(tiny_scene, fine, seed=0)
    assert lab_b.shape == tuple(2 * s for s in lab_a.shape)
    assert lab_a.max() == lab_b.max()
    assert abs((lab_a > 0).mean() - (lab_b > 0).mean()) < 0.01
    # nearest-neighbour sub-sampling of the fine labels is close to the coarse ones
    agree = (lab_b[1::2, 1::2, 1::2] > 0) == (lab_a > 0)
    assert agree.mean() > 0.95


# ------------------------------------------------------------------------------------------- domain shift


def test_style_interpolation_endpoints_and_extrapolation():
    assert S.style_for_shift(1.0) == S.TARGET_STYLE
    s0 = S.style_for_shift(0.0)
    assert {**s0.to_dict(), "name": ""} == {**S.SOURCE_STYLE.to_dict(), "name": ""}
    half = S.style_for_shift(0.5)
    for f in ("noise_std", "blur_sigma_nm", "texture_scale_nm", "distractor_density"):
        lo, hi = sorted((getattr(S.SOURCE_STYLE, f), getattr(S.TARGET_STYLE, f)))
        assert lo < getattr(half, f) < hi
    far = S.style_for_shift(3.0)
    assert all(v > 0 for v in far.voxel_size)
    assert far.noise_std > S.TARGET_STYLE.noise_std
    assert far.cristae_contrast <= S.TARGET_STYLE.cristae_contrast


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "1"])
def test_bad_shift_is_a_user_error(bad):
    with pytest.raises(InputError, match="shift"):
        S.style_for_shift(bad)


def test_domain_shift_grows_with_shift(tiny_scene):
    """Same tissue imaged with growing shift: after per-volume z-scoring the mitochondria separate less
    from the background and the image gets rougher (noise); the raw intensity statistics drift away."""
    separation, roughness, mean = [], [], []
    for shift in (0.0, 0.5, 1.0, 1.5):
        image, labels = S.render_scene(tiny_scene, S.style_for_shift(shift), seed=0)
        z = (image - image.mean()) / image.std()
        fg = labels > 0
        separation.append(z[~fg].mean() - z[fg].mean())
        roughness.append(np.abs(np.diff(z, axis=2)).mean())
        mean.append(image.mean())
    assert all(a > b for a, b in zip(separation, separation[1:])), separation
    assert all(a < b for a, b in zip(roughness, roughness[1:])), roughness
    assert all(a > b for a, b in zip(mean, mean[1:])), mean
    assert separation[-1] > 0.3  # still recognisable: mitochondria stay darker than the background


def test_shift_zero_keeps_the_source_style():
    p = S.make_domain_pair("tiny", seed=0, shift=0.0)
    assert p["target_voxel_size"] == p["source_voxel_size"]
    assert p["target_image"].shape == p["source_image"].shape
    assert abs(float(p["target_image"].mean()) - float(p["source_image"].mean())) < 15


def test_generate_volume_any_shape_and_style():
    img, lab = S.generate_volume((6, 40, 48), S.TARGET_STYLE, seed=2)
    assert img.shape == lab.shape == (6, 40, 48)
    assert img.dtype == np.uint8 and lab.dtype == np.uint32
    img2, lab2 = S.generate_volume((6, 40, 48), S.TARGET_STYLE, seed=2)
    np.testing.assert_array_equal(img, img2)
    np.testing.assert_array_equal(lab, lab2)


@pytest.mark.parametrize("kwargs, match", [
    ({"size": "huge"}, "size 'huge'"),
    ({"size": (0, 10, 10)}, "shape"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"shift": -1}, "shift"),
])
def test_make_domain_pair_rejects_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match) as info:
        S.make_domain_pair(**kwargs)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------- files and CLI


@pytest.mark.parametrize("ome_version", ["0.4", "0.5"])
def test_sample_data_files(tmp_path, ome_version):
    out = tmp_path / "sample"
    paths = S.sample_data(out, size="tiny", seed=0, ome_version=ome_version)
    pair = S.make_domain_pair("tiny", seed=0)
    assert set(paths) == {"source_image", "source_labels", "target_image", "target_groundtruth", "metadata",
                          "readme"}
    assert all(p.exists() for p in paths.values())
    checks = (("source_image", "source_image", "source_voxel_size"),
              ("source_labels", "source_labels", "source_voxel_size"),
              ("target_image", "target_image", "target_voxel_size"),
              ("target_groundtruth", "target_labels", "target_voxel_size"))
    for key, array_key, vs_key in checks:
        vol = open_volume(str(paths[key]))
        assert vol.voxel_size == pytest.approx(pair[vs_key])
        np.testing.assert_array_equal(vol[:], pair[array_key])
    meta = json.loads(paths["metadata"].read_text())
    assert meta["seed"] == 0 and meta["size"] == "tiny" and meta["ome_version"] == ome_version
    assert meta["target"]["voxel_size_nm"] == list(S.TARGET_STYLE.voxel_size)
    assert meta["source"]["style"]["cristae_contrast"] == S.SOURCE_STYLE.cristae_contrast
    assert "evaluation only" in paths["readme"].read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["sample"]  # no temporary leftovers


def test_sample_data_refuses_existing_folder_unless_overwrite(tmp_path):
    out = tmp_path / "sample"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    # not ours: said at once (--overwrite would not help), and never deleted
    with pytest.raises(InputError, match="exists and it is not a masktwins-bio sample-data folder"):
        S.sample_data(out, size="tiny")
    with pytest.raises(InputError, match="not a masktwins-bio sample-data folder"):
        S.sample_data(out, size="tiny", overwrite=True)
    assert (out / "keep.txt").exists()
    (out / "keep.txt").unlink()  # an empty folder holds nothing to lose
    S.sample_data(out, size="tiny", overwrite=True)
    assert (out / "source" / "raw.zarr").exists()
    S.sample_data(out, size="tiny", overwrite=True)  # our own folder: replaced


def test_sample_data_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    import masktwins_bio.io as io

    real = io.write_ome_zarr
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(io, "write_ome_zarr", failing)
    out = tmp_path / "new" / "deeper" / "sample"
    with pytest.raises(RuntimeError, match="disk full"):
        S.sample_data(out, size="tiny")
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # neither the output, nor a partial folder, nor the created parents


def test_cli_sample_data(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["sample-data", str(out), "--size", "tiny", "--seed", "1", "--shift", "0.5",
                 "--ome-version", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "target_groundtruth" in printed and "evaluation only" in printed
    vol = open_volume(str(out / "target" / "raw.zarr"))
    assert vol.voxel_size == pytest.approx(S.style_for_shift(0.5).voxel_size)
    assert json.loads((out / "sample_data.json").read_text())["shift"] == 0.5

    # existing DIR without --overwrite: exit status 2, one line, no traceback
    assert main(["sample-data", str(out), "--size", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert main(["sample-data", str(out), "--size", "tiny", "--overwrite"]) == 0


@pytest.mark.parametrize("argv", [["--shift", "-1"], ["--seed", "x"], ["--size", "huge"]])
def test_cli_sample_data_bad_arguments(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(["sample-data", str(tmp_path / "d"), *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert not (tmp_path / "d").exists()
