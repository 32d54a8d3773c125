"""Sample data: the synthetic source/target pair with target ground truth, scaled by voxel size."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from masktwins_bio.napari._sample_data import sample_layers  # noqa: E402


def test_sample_layers(tiny_pair):
    layers = sample_layers("tiny")
    assert [(kw["name"], kind) for _, kw, kind in layers] == [
        ("source image", "image"), ("source labels", "labels"), ("target image", "image"),
        ("target ground truth", "labels")]
    src, _, tgt, gt = layers
    assert src[1]["scale"] == tiny_pair["source_voxel_size"] and tgt[1]["scale"] == tiny_pair["target_voxel_size"]
    np.testing.assert_array_equal(tgt[0], tiny_pair["target_image"])
    assert gt[1]["translate"] == tgt[1]["translate"] and tgt[1]["translate"][2] > 0  # beside the source
    layers[1][0][:] = 0  # painting a layer must not change the cached pair
    assert sample_layers("tiny")[1][0].any()


def test_open_sample_in_viewer():
    import npe2
    from napari.components import ViewerModel

    npe2.PluginManager.instance().discover()
    viewer = ViewerModel()
    viewer.open_sample("masktwins-bio", "synthetic_pair")
    assert [layer.name for layer in viewer.layers] == ["source image", "source labels", "target image",
                                                       "target ground truth"]
    assert viewer.layers["target image"].data.shape[0] > 1
