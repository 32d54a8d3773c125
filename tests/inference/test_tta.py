"""Flip TTA: 8 flips, never an axis swap, flip-equivariant result, identity for flip-equivariant networks."""

from __future__ import annotations

import pytest
import torch

from masktwins_bio.errors import InputError
from masktwins_bio.inference import flip_dims, tta_predictor


def test_flip_dims():
    assert flip_dims("none") == [()]
    dims = flip_dims("flips")
    assert len(dims) == len(set(dims)) == 8 and () in dims and (2, 3, 4) in dims
    with pytest.raises(InputError):
        flip_dims("rot90")


def test_tta_result_is_flip_equivariant():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 1, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv3d(1, 1, (1, 3, 5)))
    fn = tta_predictor(lambda x: torch.sigmoid(torch.nn.functional.pad(net(x), (2, 2, 1, 1))), "flips")
    x = torch.randn(2, 1, 4, 6, 10)
    with torch.no_grad():
        out = fn(x)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
        for dims in [(2,), (3,), (4,), (2, 4)]:
            torch.testing.assert_close(fn(torch.flip(x, dims)), torch.flip(out, dims), atol=1e-6, rtol=0)


def test_tta_is_identity_for_equivariant_network():
    net = torch.nn.Conv3d(1, 1, 1)
    plain = lambda x: torch.sigmoid(net(x))  # noqa: E731
    x = torch.randn(1, 1, 3, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(tta_predictor(plain, "flips")(x), plain(x))
    assert tta_predictor(plain, "none") is plain
