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
