"""Inputs a demanding user tries (issue 12, item 7): unicode and space paths, empty stores, a file where a folder is
expected - one line and exit 2 when wrong, the right result when fine, inputs untouched."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from masktwins_bio.cli import main
from masktwins_bio.io import open_volume


def test_unicode_and_spaces_in_paths(tmp_path):
    folder = tmp_path / "données brutes ü"
    folder.mkdir()
    stack = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    tifffile.imwrite(folder / "pile é.tif", stack)
    out = folder / "sortie ß.zarr"
    assert main(["convert", str(folder / "pile é.tif"), str(out), "--voxel-size", "40,8,8"]) == 0
    np.testing.assert_array_equal(open_volume(out)[:], stack)


@pytest.mark.parametrize("argv, needle", [
    (["info", "{d}/empty.zarr"], "empty.zarr"),
    (["segment", "{d}/empty.zarr", "{d}/l.zarr", "--no-progress"], "empty.zarr"),
    (["convert", "{d}/empty.zarr", "{d}/c.zarr"], "empty.zarr"),
    (["train", "{d}/folder.yaml"], "folder.yaml"),
])
def test_empty_or_wrong_kind_of_path(tmp_path, refusal, digest, argv, needle):
    (tmp_path / "empty.zarr").mkdir()
    (tmp_path / "folder.yaml").mkdir()
    before = digest(tmp_path)
    assert main([a.format(d=tmp_path) for a in argv]) == 2
    refusal(needle)
    assert digest(tmp_path) == before


@pytest.mark.parametrize("argv", [
    ["info", "{d}/p.zarr"],
    ["segment", "{d}/p.zarr", "{d}/l.zarr", "--no-progress"],
    ["convert", "{d}/p.zarr", "{d}/c.zarr"],
    ["evaluate", "{d}/p.zarr", "{d}/p.zarr", "--gt-threshold", "128"],
])
def test_a_corrupt_chunk_is_one_line_naming_the_file_and_region(tmp_path, refusal, digest, argv):
    """Issue 12: a damaged chunk ended in a blosc RuntimeError traceback; now one line, exit 2, nothing written."""
    from masktwins_bio.io import write_ome_zarr

    data = (np.random.default_rng(0).random((4, 64, 64)) * 255).astype(np.uint8)
    store = write_ome_zarr(tmp_path / "p.zarr", data, voxel_size=(40, 8, 8), chunks=(2, 32, 32),
                           attrs={"task": "predict", "complete": True})
    (store / "0" / "c" / "0" / "0" / "1").write_bytes(b"\x00 definitely not a blosc frame \xff" * 2)  # Zarr v3
    before = digest(tmp_path)
    assert main([a.format(d=tmp_path) for a in argv]) == 2
    refusal("p.zarr: cannot read voxels [", "damaged or unreadable")
    assert digest(tmp_path) == before  # no output, not even a hidden partial one
