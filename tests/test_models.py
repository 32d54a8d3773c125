"""Network factory (all MONAI) and the exported model file (loaded with weights_only=True)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from masktwins_bio.config import ModelConfig
from masktwins_bio.errors import InputError
from masktwins_bio.models import (build_network, default_strides, export_model, fast_activations, load_model,
                                  required_divisor)

CASES = [
    ("unet", (4, 8, 16), (8, 32, 32)),
    ("dynunet", (4, 8, 16), (8, 32, 32)),
    ("basic_unet", (4, 4, 8, 8, 16, 4), (16, 32, 32)),
    ("segresnet", (4, 8, 16), (8, 32, 32)),
]


@pytest.mark.parametrize("name, channels, patch", CASES)
@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_every_network_builds_and_runs(name, channels, patch, head):
    cfg = ModelConfig(name=name, channels=channels, head=head, num_res_units=1)
    net = build_network(cfg, (40, 8, 8), patch)
    assert all(p % d == 0 for p, d in zip(patch, required_divisor(cfg, (40, 8, 8), patch)))
    out = net(torch.randn(1, 1, *patch))
    assert out.shape == (1, 2 if head == "softmax" else 1, *patch)


@pytest.mark.parametrize("name, channels, patch", CASES)
def test_fast_activations_change_no_value_gradient_or_key(name, channels, patch):
    import copy

    torch.manual_seed(0)
    cfg = ModelConfig(name=name, channels=channels, num_res_units=1)
    net = build_network(cfg, (40, 8, 8), patch)
    fast = fast_activations(copy.deepcopy(net))
    assert list(fast.state_dict()) == list(net.state_dict())
    assert not any(type(m) is torch.nn.PReLU for m in fast.modules())
    x = torch.randn(2, 1, *patch)
    a, b = net(x), fast(x)
    assert torch.equal(a, b)  # bit for bit
    a.square().mean().backward()
    b.square().mean().backward()
    for (k, p), q in zip(net.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-8, msg=k)
    # a state dict saved from the swapped network loads into the library class (what export relies on)
    net.load_state_dict(fast.state_dict())


@pytest.mark.parametrize("num_parameters", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_fast_prelu_equals_nn_prelu_in_value_and_gradient(num_parameters, dtype):
    from masktwins_bio.models import _FastPReLU

    torch.manual_seed(0)
    ref = torch.nn.PReLU(num_parameters, init=0.2).to(torch.float64 if dtype == torch.float64 else torch.float32)
    fast = _FastPReLU(num_parameters)
    fast.weight = torch.nn.Parameter(ref.weight.detach().clone())
    x = torch.randn(2, 3, 4, 5, 6, dtype=dtype)
    x[0, :, 0] = 0  # the kink: ATen's PReLU passes w * grad there, and so must the swap
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn_like(x)
    a = torch.nn.functional.prelu(xa, ref.weight.to(dtype))
    b = fast(xb)
    assert torch.equal(a, b)
    a.backward(grad)
    b.backward(grad)
    assert torch.equal(xb.grad, xa.grad)  # bit for bit: grad or w * grad
    assert fast.weight.grad.dtype == fast.weight.dtype and fast.weight.grad.shape == (num_parameters,)
    tol = {"rtol": 1e-2, "atol": 1e-2} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, **tol)
    if dtype == torch.float64:
        from masktwins_bio.models import _PReLUFunction

        w = fast.weight.detach().clone().requires_grad_()
        assert torch.autograd.gradcheck(_PReLUFunction.apply, (torch.randn(1, 3, 2, 3, 3, dtype=dtype,
                                                                           requires_grad=True), w))


@pytest.mark.parametrize("name, channels, patch", CASES)
def test_cpu_swap_runs_small_convolutions_channels_last_with_equal_values(name, channels, patch):
    import copy

    from masktwins_bio.models import SMALL_CONV_CHANNELS, _ChannelsLastConv3d

    torch.manual_seed(0)
    net = build_network(ModelConfig(name=name, channels=channels, num_res_units=1), (40, 8, 8), patch)
    fast = fast_activations(copy.deepcopy(net), cpu=True)
    assert list(fast.state_dict()) == list(net.state_dict())
    small = [m for m in fast.modules() if isinstance(m, torch.nn.Conv3d)
             and max(m.in_channels, m.out_channels) <= SMALL_CONV_CHANNELS]
    assert small and all(type(m) is _ChannelsLastConv3d for m in small)  # every case has a 2-channel output unit
    assert all(type(m) is not _ChannelsLastConv3d for m in fast.modules() if isinstance(m, torch.nn.Conv3d)
               and m.in_channels > SMALL_CONV_CHANNELS)
    x = torch.randn(2, 1, *patch)
    a, b = net(x), fast(x)
    assert b.is_contiguous()
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)  # the same sums in another order
    a.square().mean().backward()
    b.square().mean().backward()
    for (k, p), q in zip(net.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-6, msg=k)


def test_anisotropic_strides():
    assert default_strides((40, 8, 8), 3, (16, 128, 128)) == ((1, 2, 2), (1, 2, 2), (2, 2, 2))
    assert default_strides((8, 8, 8), 2, (32, 32, 32)) == ((2, 2, 2), (2, 2, 2))


def test_export_and_safe_load_roundtrip(tmp_path):
    cfg = ModelConfig(channels=(4, 8), num_res_units=1)
    net = build_network(cfg, (40, 8, 8), (8, 32, 32))
    path = export_model(net, tmp_path / "model.pt", cfg, {"voxel_size": [40, 8, 8], "patch_size": [8, 32, 32],
                                                          "training": {"method": "masktwins"}})
    blob = torch.load(path, weights_only=True)  # plain data only: loading runs no code
    assert blob["format"] == "masktwins-bio-model" and blob["model"]["channels"] == [4, 8]
    model = load_model(path)
    assert model.voxel_size == (40, 8, 8) and model.patch_size == (8, 32, 32)
    assert set(model.metadata["versions"]) >= {"masktwins_bio", "torch", "monai"}
    assert model.metadata["classes"] == ["background", "mitochondria"] and len(model.sha256) == 16
    x = torch.randn(1, 1, 8, 32, 32)
    torch.testing.assert_close(model.network(x), net.eval()(x))


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        load_model(tmp_path / "missing.pt")
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a masktwins-bio model"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot be loaded"):
        load_model(tmp_path / "junk.pt")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/masktwins_bio_pwned",))


def test_loading_never_runs_code(tmp_path):
    import os

    torch.save({"format": "masktwins-bio-model", "payload": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="cannot be loaded"):
        load_model(tmp_path / "evil.pt")
    assert not os.path.exists("/tmp/masktwins_bio_pwned")


def test_a_pickle_with_objects_is_refused_without_unsafe_advice(tmp_path):
    """Issue 14: a .pt that is not a model ended in torch's 're-run with weights_only=False' advice."""
    import collections

    import torch

    from masktwins_bio.errors import InputError
    from masktwins_bio.models import load_model

    torch.save({"opt": collections.Counter(a=1), "f": _Arbitrary()}, tmp_path / "other.pt")
    with pytest.raises(InputError) as err:
        load_model(tmp_path / "other.pt")
    text = str(err.value)
    assert "never unpickled" in text and "weights_only" not in text and "\x1b" not in text
    (tmp_path / "junk.pt").write_bytes(b"\x00junk")
    with pytest.raises(InputError, match="damaged or not a model file"):
        load_model(tmp_path / "junk.pt")


class _Arbitrary:
    pass


def test_the_starter_model_loads_safely_and_says_what_it_is():
    """Issue 15: a starter model ships with the package (re-created by scripts/make_starter_model.py)."""
    from masktwins_bio.models import STARTER, load_model, starter_model_path

    assert starter_model_path().is_file() and starter_model_path().stat().st_size < 5e6
    lm = load_model(STARTER)
    assert Path(lm.path) == starter_model_path() and lm.voxel_size and lm.patch_size
    assert "not a generalist" in lm.metadata["starter"]["description"]
    assert lm.metadata["starter"]["recreate"] == "python scripts/make_starter_model.py"


def test_predict_without_a_model_uses_the_starter(tmp_path, capsys):
    from masktwins_bio import cli
    from masktwins_bio.data.synthetic import sample_data
    from masktwins_bio.io import open_volume

    paths = sample_data(tmp_path / "data", size="tiny", seed=2)
    out = tmp_path / "prob.zarr"
    assert cli.main(["predict", str(paths["target_image"]), str(out), "--device", "cpu", "--no-progress"]) == 0
    assert "starter model" in capsys.readouterr().err
    prob = open_volume(out)
    assert prob.attrs["masktwins_bio"]["complete"] is True and prob[:].max() > 0
    assert cli.main(["predict", str(out)]) == 2  # one path: not enough
