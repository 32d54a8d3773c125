"""Real EM data (../shared/data or $MASKTWINS_DATA_ROOT): conversion round trips; skipped when absent."""

from __future__ import annotations

import numpy as np
import pytest

from masktwins_bio.cli import main
from masktwins_bio.io import convert_volume, open_volume, volume_info

pytestmark = pytest.mark.shared_data


def test_vnc3_png_slices_convert_exactly(shared_data, tmp_path, capsys):
    raw = shared_data / "vnc3_drosophila_mito" / "raw"
    src = open_volume(raw, voxel_size=(50, 4.6, 4.6))
    assert src.shape == (20, 1024, 1024) and src.dtype == np.uint8
    assert main(["convert", str(raw), str(tmp_path / "vnc3.zarr"), "--voxel-size", "50,4.6,4.6"]) == 0
    capsys.readouterr()
    out = open_volume(tmp_path / "vnc3.zarr")
    assert out.voxel_size == pytest.approx((50, 4.6, 4.6))
    for z0 in range(0, 20, 5):  # exact round trip, compared slab by slab
        np.testing.assert_array_equal(out[z0 : z0 + 5], src[z0 : z0 + 5])
    assert main(["info", str(tmp_path / "vnc3.zarr")]) == 0
    assert "20 x 1024 x 1024" in capsys.readouterr().out

    # the same store through ome-zarr-py's reader and through napari's plugin reader
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(str(tmp_path / "vnc3.zarr")))()))
    assert node.data[0].shape == (20, 1024, 1024) and len(node.data) >= 2  # pyramid
    napari_reader = pytest.importorskip("masktwins_bio.napari._reader")
    reader = napari_reader.get_reader(str(tmp_path / "vnc3.zarr"))
    data, kwargs, layer_type = reader(str(tmp_path / "vnc3.zarr"))[0]
    assert layer_type == "image" and list(kwargs["scale"]) == pytest.approx([50, 4.6, 4.6])


def test_vnc3_mixed_mode_label_slices(shared_data, tmp_path):
    mito = shared_data / "vnc3_drosophila_mito" / "mitochondria"
    labels = open_volume(mito, kind="labels")
    out = convert_volume(mito, tmp_path / "mito.zarr", voxel_size=(50, 4.6, 4.6), binarize=1)
    converted = open_volume(out, kind="labels")
    np.testing.assert_array_equal(converted[:], (labels[:] > 0).astype(np.uint8))
    fraction = converted[:].mean()
    assert 0.05 < fraction < 0.06  # 5.39 % mitochondria (SOURCE.md)
    assert volume_info(out)["value_range"] == [0, 1]


def test_fafb_rgba_label_slices(shared_data):
    seg = open_volume(shared_data / "fafb_mito_damitoseg" / "seg", kind="labels")
    assert seg.shape == (8, 1736, 1736)
    fg = seg[2] >= 128
    assert 0.05 < fg.mean() < 0.15
