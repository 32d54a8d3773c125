"""volume_statistics: integer volumes use an exact histogram path equal to the float definition."""

from __future__ import annotations

import numpy as np
import pytest

from masktwins_bio.data.normalize import normalize, volume_statistics
from masktwins_bio.errors import InputError
from masktwins_bio.io import Volume


@pytest.mark.parametrize("dtype,low,high", [("uint8", 0, 256), ("int16", -3000, 3000), ("uint16", 100, 60000),
                                            ("int8", -128, 128), ("uint8", 7, 9)])
@pytest.mark.parametrize("shape", [(1, 2, 3), (3, 5, 7), (4, 64, 64)])
def test_integer_statistics_equal_numpy_on_floats(dtype, low, high, shape):
    data = np.random.default_rng(0).integers(low, high, shape).astype(dtype)
    stats = volume_statistics(Volume(data, (30.0, 8.0, 8.0)))
    f = data.astype(np.float64)
    p1, p99 = np.percentile(f, [1, 99])
    assert (stats["p1"], stats["p99"]) == (float(p1), float(p99))  # numpy's interpolation, exactly
    np.testing.assert_allclose([stats["mean"], stats["std"]], [f.mean(), f.std()], rtol=1e-12)


def test_float_volume_and_normalize():
    data = np.random.default_rng(0).normal(5.0, 2.0, (4, 32, 32)).astype(np.float32)
    stats = volume_statistics(Volume(data, (30.0, 8.0, 8.0)))
    np.testing.assert_allclose([stats["mean"], stats["std"]], [data.mean(), data.std()], rtol=1e-5)
    z = normalize(data, stats)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-4


def test_constant_volume_is_refused():
    with pytest.raises(InputError, match="constant"):
        volume_statistics(Volume(np.full((2, 8, 8), 3, np.uint8), (30.0, 8.0, 8.0)))


def test_histogram_normalisation_maps_a_distribution_onto_the_reference():
    import torch

    from masktwins_bio.data.normalize import normalization_metadata, normalize, statistics_for, volume_statistics
    from masktwins_bio.io import Volume

    rng = np.random.default_rng(0)
    src = Volume(array=rng.gamma(2.0, 20.0, (8, 64, 64)).clip(0, 255).astype(np.uint8), voxel_size=(1, 1, 1),
                 path="<src>", kind="image")
    # the target: another contrast curve of another tissue (a monotone distortion + different mean)
    tgt_data = (255 * (rng.beta(5, 2, (8, 64, 64)) ** 2)).astype(np.uint8)
    tgt = Volume(array=tgt_data, voxel_size=(1, 1, 1), path="<tgt>", kind="image")
    meta = normalization_metadata("histogram", volume_statistics(src))
    out = normalize(tgt[:], statistics_for(tgt, meta), "histogram")
    ref = normalize(src[:], statistics_for(src, meta), "zscore")  # the source itself, z-scored
    qs = np.linspace(5, 95, 19)
    np.testing.assert_allclose(np.percentile(out, qs), np.percentile(ref, qs), atol=0.1)
    # monotone (order-preserving) and the same on a tensor as on an array
    order = np.argsort(tgt_data.ravel())
    assert np.all(np.diff(out.ravel()[order]) >= -1e-6)
    t = normalize(torch.from_numpy(tgt_data), statistics_for(tgt, meta), "histogram")
    np.testing.assert_allclose(t.numpy(), out, atol=1e-5)
    # the source mapped onto itself is (nearly) its own z-score
    np.testing.assert_allclose(normalize(src[:], statistics_for(src, meta), "histogram"), ref, atol=0.15)


def test_histogram_normalisation_without_a_reference_is_refused():
    import pytest

    from masktwins_bio.data.normalize import statistics_for
    from masktwins_bio.errors import InputError
    from masktwins_bio.io import Volume

    vol = Volume(array=np.arange(4096, dtype=np.uint16).reshape(4, 32, 32), voxel_size=(1, 1, 1), path="<v>")
    with pytest.raises(InputError, match="no reference distribution"):
        statistics_for(vol, {"mode": "histogram"})
