"""MONAI networks by name, and the exported model file.

The model file (``model.pt``) is a plain dict of tensors, numbers, strings and lists, saved with :func:`torch.save`
and loaded with ``torch.load(weights_only=True)``: loading never executes code. It stores the network's *init
arguments* (the ``model`` config section), not a pickled module, plus the metadata inference needs (voxel size,
patch size, normalisation, output head, classes) and provenance (training domains, method, config hash, package
versions).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import itertools
import os
import pickle
import platform
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from ._version import __version__
from .config import ModelConfig
from .devices import unwrap
from .errors import InputError
from .files import atomic_file, plain
from .registry import NETWORKS

__all__ = [
    "build_network",
    "fast_activations",
    "network_architecture",
    "default_strides",
    "required_divisor",
    "LoadedModel",
    "export_model",
    "load_model",
    "check_model_file",
    "model_hash",
    "MODEL_FORMAT",
    "STARTER",
    "starter_model_path",
]

MODEL_FORMAT = "masktwins-bio-model"
MODEL_FORMAT_VERSION = 1
#: the name that selects the starter model wherever a model file is expected (``load_model("starter")``)
STARTER = "starter"


def starter_model_path() -> Path:
    """The starter model shipped with the package: a small source-only UNet trained on the project's synthetic EM
    (re-created by ``scripts/make_starter_model.py``) - a starting point for adaptation, not a generalist model."""
    return Path(__file__).resolve().parent / "starter" / "starter_model.pt"


def default_strides(voxel_size: Optional[Sequence[float]], n_levels: int, patch_size: Sequence[int]):
    """Anisotropy-aware strides: halve only the currently finest axes (within 1.5x), never below 4 voxels."""
    vs = np.asarray(voxel_size if voxel_size is not None else (1.0, 1.0, 1.0), dtype=float)
    size = np.asarray(patch_size, dtype=float)
    strides = []
    for _ in range(n_levels):
        step = np.where((vs <= vs.min() * 1.5) & (size / 2 >= 4), 2, 1)
        if (step == 1).all():
            step = np.where(size / 2 >= 2, 2, 1)
        strides.append(tuple(int(s) for s in step))
        vs = vs * step
        size = size / step
    return tuple(strides)


def _stride_divisor(model_cfg: ModelConfig, voxel_size, patch_size) -> tuple[int, int, int]:
    strides = model_cfg.strides or default_strides(voxel_size, len(model_cfg.channels) - 1, patch_size)
    return tuple(int(np.prod([s[a] for s in strides])) for a in range(3))  # type: ignore[return-value]


def _instantiate(import_from: str, name: str, kwargs: dict) -> nn.Module:
    """``import_from.name(**kwargs)``: the library architecture a spec describes (also what bioimage.io records)."""
    module = importlib.import_module(import_from)
    with contextlib.redirect_stdout(io.StringIO()):  # BasicUNet prints its features
        return getattr(module, name)(**kwargs)


class _LibrarySpec:
    """A network that is a library class built from plain keyword arguments (:meth:`architecture`), so that a model
    file or a bioimage.io package can name it (``monai.networks.nets.UNet`` and its kwargs) instead of our code."""

    @classmethod
    def build(cls, model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size) -> nn.Module:
        return _instantiate(*cls.architecture(model_cfg, strides, out_channels, norm, voxel_size))


@NETWORKS.register
class UNetSpec(_LibrarySpec):
    """``model.name: unet``: MONAI's residual UNet with anisotropy-aware strides."""

    name = "unet"
    divisor = staticmethod(_stride_divisor)

    @staticmethod
    def architecture(model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size):
        return "monai.networks.nets", "UNet", dict(
            spatial_dims=3, in_channels=1, out_channels=out_channels, channels=list(model_cfg.channels),
            strides=[list(s) for s in strides], num_res_units=model_cfg.num_res_units, norm=norm,
            dropout=model_cfg.dropout)


@NETWORKS.register
class DynUNetSpec(_LibrarySpec):
    """``model.name: dynunet``: MONAI's DynUNet, 1x3x3 kernels while z is much coarser than y/x."""

    name = "dynunet"
    divisor = staticmethod(_stride_divisor)

    @staticmethod
    def architecture(model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size):
        vs = np.asarray(voxel_size if voxel_size is not None else (1.0, 1.0, 1.0), dtype=float)
        kernels = []
        for s in ((1, 1, 1),) + strides:
            # 1x3x3 kernels while z is much coarser than y/x, 3x3x3 once near-isotropic
            kernels.append([1 if (a == 0 and vs[0] > 2.5 * vs[1:].min()) else 3 for a in range(3)])
            vs = vs * np.asarray(s)
        return "monai.networks.nets", "DynUNet", dict(
            spatial_dims=3, in_channels=1, out_channels=out_channels, kernel_size=kernels,
            strides=[[1, 1, 1]] + [list(s) for s in strides], upsample_kernel_size=[list(s) for s in strides],
            filters=list(model_cfg.channels), norm_name=norm, dropout=model_cfg.dropout or None,
            res_block=model_cfg.num_res_units > 0)


@NETWORKS.register
class BasicUNetSpec(_LibrarySpec):
    """``model.name: basic_unet``: MONAI's BasicUNet (isotropic, five levels; ``channels`` padded to six)."""

    name = "basic_unet"
    @staticmethod
    def divisor(model_cfg: ModelConfig, voxel_size, patch_size) -> tuple[int, int, int]:
        return (16, 16, 16)

    @staticmethod
    def architecture(model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size):
        ch = list(model_cfg.channels)
        features = ch if len(ch) == 6 else (ch + [ch[-1]] * 5)[:5] + [ch[0]]
        return "monai.networks.nets", "BasicUNet", dict(
            spatial_dims=3, in_channels=1, out_channels=out_channels, features=features, norm=norm,
            dropout=model_cfg.dropout)


@NETWORKS.register
class SegResNetSpec(_LibrarySpec):
    """``model.name: segresnet``: MONAI's SegResNet (isotropic down-sampling by 2 per level)."""

    name = "segresnet"
    @staticmethod
    def divisor(model_cfg: ModelConfig, voxel_size, patch_size) -> tuple[int, int, int]:
        d = 2 ** (len(model_cfg.channels) - 1)
        return (d, d, d)

    @staticmethod
    def architecture(model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size):
        n_levels = len(model_cfg.channels) - 1
        return "monai.networks.nets", "SegResNet", dict(
            spatial_dims=3, in_channels=1, out_channels=out_channels, init_filters=model_cfg.channels[0],
            blocks_down=[1, 2, 2, 4, 4][: n_levels + 1], blocks_up=[1, 1, 1, 1][:n_levels], norm=norm,
            dropout_prob=model_cfg.dropout or None)


class _PReLUFunction(torch.autograd.Function):
    """PReLU with ATen's fused forward and a backward of cheap elementwise passes.

    ATen's own PReLU backward took 17 % of a CPU bf16 training step in a ``torch.profiler`` profile; its forward
    is a single fused pass. The backward here splits the incoming gradient with ReLU's backward kernel (``g`` where
    ``x > 0``, the rest where ``x <= 0``), so ``grad_x`` equals ATen's bit for bit (``g`` or ``w * g``) and
    ``grad_w = sum(g * x)`` over ``x <= 0`` is rounded to the activation's dtype as autograd does for ``nn.PReLU``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        w = weight.to(x.dtype)
        ctx.save_for_backward(x, w)
        ctx.weight_dtype = weight.dtype
        return torch.nn.functional.prelu(x, w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, w = ctx.saved_tensors
        positive = torch.ops.aten.threshold_backward(grad, x, 0)  # grad where x > 0, else 0
        negative = grad - positive  # grad where x <= 0, else 0 (exact: one of the two terms is 0)
        per_channel = w.numel() > 1
        wb = w.view(1, -1, *([1] * (x.dim() - 2))) if per_channel else w
        grad_x = torch.addcmul(positive, negative, wb)
        dims = [d for d in range(x.dim()) if d != 1] if per_channel else list(range(x.dim()))
        # ATen accumulates a bf16 sum in fp32 and rounds once; a sum with dtype=float32 would copy the tensor first
        grad_w = torch.sum(negative * x, dim=dims).reshape(w.shape)
        return grad_x, grad_w.to(ctx.weight_dtype)


class _FastPReLU(nn.PReLU):
    """``nn.PReLU`` with a cheaper backward pass (:class:`_PReLUFunction`): the same values (bit for bit in the
    forward pass and in the gradient of the input). On the CPU in bf16 the activation's forward and backward cost half
    of ``relu(x) - w * relu(-x)``'s and a quarter of ATen's (``benchmarks/train_step.py`` times the step with and
    without the swap). Same parameters and state-dict keys, so exported models are plain MONAI ones."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PReLUFunction.apply(x, self.weight)


class _ChannelsLastConv3d(nn.Conv3d):
    """``nn.Conv3d`` run in the channels-last-3d layout and handed back contiguous. For a convolution with a handful of
    channels at full resolution (MONAI UNet's last 2 -> 2 unit) oneDNN's contiguous backward pass is 4-5x slower
    than its channels-last one on the CPU (BENCHMARKS.md, "Training step"; ``benchmarks/train_step.py`` times the
    whole step with and without the swap); the layout changes the order of the
    floating-point sums, not the result beyond rounding. Same parameters and state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cl = torch.channels_last_3d
        return self._conv_forward(x.contiguous(memory_format=cl), self.weight.contiguous(memory_format=cl),
                                  self.bias).contiguous()


#: a Conv3d with at most this many input and output channels runs channels-last on the CPU (measured: 2 -> 2 gains
#: 4-5x in its backward pass, 16 -> 16 loses)
SMALL_CONV_CHANNELS = 4


def fast_activations(network: nn.Module, cpu: bool = False) -> nn.Module:
    """Swap modules of ``network`` (in place) for numerically equal ones with a cheaper backward pass: every
    ``nn.PReLU``, and with ``cpu`` every 3D convolution of at most :data:`SMALL_CONV_CHANNELS` input and output
    channels (run channels-last).

    Training only needs it (inference has no backward); the swapped modules keep their parameters, so state dicts,
    checkpoints and exported models are unchanged.
    """
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.PReLU:
                fast = _FastPReLU(child.num_parameters)
                fast.weight = child.weight
                setattr(parent, name, fast)
            elif (cpu and type(child) is nn.Conv3d and child.padding_mode == "zeros"
                  and max(child.in_channels, child.out_channels) <= SMALL_CONV_CHANNELS):
                conv = _ChannelsLastConv3d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                           child.padding, child.dilation, child.groups, child.bias is not None,
                                           device="meta")
                conv.weight, conv.bias = child.weight, child.bias
                setattr(parent, name, conv)
    return network


def required_divisor(model_cfg: ModelConfig, voxel_size=None, patch_size=(16, 96, 96)) -> tuple[int, int, int]:
    """Input sizes along each axis must be multiples of this (the product of the strides)."""
    return NETWORKS[model_cfg.name].divisor(model_cfg, voxel_size, patch_size)


def _spec_arguments(model_cfg: ModelConfig, voxel_size, patch_size):
    out_ch = 2 if model_cfg.head == "softmax" else 1
    n_levels = len(model_cfg.channels) - 1
    strides = tuple(tuple(s) for s in (model_cfg.strides or default_strides(voxel_size, n_levels, patch_size)))
    if len(strides) != n_levels:
        raise InputError(f"model.strides has {len(strides)} entries; it needs len(model.channels) - 1 = {n_levels}")
    norm = {"instance": "instance", "batch": "batch", "group": ["group", {"num_groups": 8}]}[model_cfg.norm]
    return model_cfg, strides, out_ch, norm, voxel_size


def build_network(model_cfg: ModelConfig, voxel_size=None, patch_size=(16, 96, 96)) -> nn.Module:
    """Build the network ``model_cfg.name`` of :data:`masktwins_bio.registry.NETWORKS`.

    Args:
        model_cfg: The ``model`` config section.
        voxel_size: Training voxel size in nm (z, y, x), used for anisotropy-aware strides/kernels.
        patch_size: Training patch size in voxels (used to keep strides valid).

    Returns:
        A module mapping ``(B, 1, Z, Y, X)`` to logits ``(B, C, Z, Y, X)`` with C = 2 (softmax) or 1 (sigmoid).
    """
    return NETWORKS[model_cfg.name].build(*_spec_arguments(model_cfg, voxel_size, patch_size))


def network_architecture(model_cfg: ModelConfig, voxel_size=None, patch_size=(16, 96, 96)) -> tuple[str, str, dict]:
    """The library class :func:`build_network` instantiates: ``(import_from, callable, kwargs)`` with plain
    (JSON-able) kwargs, e.g. ``("monai.networks.nets", "UNet", {...})``.

    Raises:
        InputError: the network was registered with a ``build`` of its own (no library architecture).
    """
    spec = NETWORKS[model_cfg.name]
    if not hasattr(spec, "architecture"):
        raise InputError(f"model.name {model_cfg.name!r}: the network is built by its own code, not from a library "
                         "class with keyword arguments, so it cannot be described by name (bioimage.io export)")
    import_from, name, kwargs = spec.architecture(*_spec_arguments(model_cfg, voxel_size, patch_size))
    return import_from, name, plain(kwargs)


def _versions() -> dict:
    import monai

    return {"masktwins_bio": __version__, "torch": torch.__version__, "monai": monai.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def export_model(network: nn.Module, path: str | os.PathLike, model_cfg: ModelConfig, metadata: dict) -> Path:
    """Save a model file (atomically: temporary file, then rename).

    Args:
        network: The trained network (its ``state_dict`` is stored, moved to CPU).
        path: Output file, usually ``model.pt``.
        model_cfg: Init arguments of the network.
        metadata: Must contain ``voxel_size`` (nm) and ``patch_size`` (voxels); may contain ``normalization``,
            ``training`` (domains, method, steps, config hash) and anything JSON-like.
    """
    for key in ("voxel_size", "patch_size"):
        if key not in metadata:
            raise ValueError(f"model metadata needs {key!r}")
    module = unwrap(network)
    state = {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}
    meta = {
        "classes": ["background", "mitochondria"],
        "head": model_cfg.head,
        "normalization": {"mode": "zscore", "per_volume": True},
        **metadata,
        "versions": _versions(),
    }
    blob = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "model": model_cfg.model_dump(mode="json"),
            "metadata": plain(meta), "state_dict": state}
    path = Path(path)
    with atomic_file(path) as tmp:
        torch.save(blob, tmp)
    return path


@dataclass
class LoadedModel:
    """A network with its metadata, ready for inference.

    Attributes:
        network: The module in eval mode on ``device``.
        model_cfg: Its init arguments.
        metadata: Voxel size (nm), patch size (voxels), normalisation, head, classes, provenance.
        path: The file it was loaded from.
        sha256: Hash of the file (provenance of predictions).
    """

    network: nn.Module
    model_cfg: ModelConfig
    metadata: dict
    path: str
    sha256: str

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.metadata["voxel_size"])  # type: ignore[return-value]

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.metadata["patch_size"])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def foreground_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, C, ...)`` logits to ``(B, 1, ...)`` foreground probability."""
        return logits_to_foreground(logits, self.model_cfg.head)


def logits_to_foreground(logits: torch.Tensor, head: str) -> torch.Tensor:
    if head == "sigmoid":
        return torch.sigmoid(logits.float())
    return torch.softmax(logits.float(), dim=1)[:, 1:2]


def model_hash(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _network_with_weights(model_cfg: ModelConfig, metadata: dict, state: dict, path: Path) -> nn.Module:
    """The stored architecture holding ``state``.

    Built on the ``meta`` device and given the loaded tensors (``assign=True``): a random initialisation that would
    be overwritten at once costs a tenth of a second for a BasicUNet-32, a fixed cost of every ``predict``. Falls
    back to a normal build when the architecture cannot be built that way or keeps tensors outside its state dict.
    """
    args = (model_cfg, metadata.get("voxel_size"), metadata.get("patch_size", (16, 96, 96)))
    net = None
    try:
        with torch.device("meta"):
            net = build_network(*args)
        net.load_state_dict(state, assign=True)
        if any(t.is_meta for t in itertools.chain(net.parameters(), net.buffers())):
            net = None
    except Exception:  # anything the meta device cannot do: the plain build below reports real problems
        net = None
    if net is not None:
        return net
    net = build_network(*args)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not match the stored architecture ({str(exc).splitlines()[0]})") from None
    return net


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model file (or a training checkpoint) safely with ``torch.load(weights_only=True)``.

    ``path`` may be :data:`STARTER` (``"starter"``) for the shipped starter model, or a bioimage.io package (zip or
    folder) written by :func:`masktwins_bio.bioimageio.export_bioimageio`.

    Raises:
        InputError: missing file, not a masktwins-bio model, or incompatible weights.
    """
    path = starter_model_path() if str(path) == STARTER and not Path(path).exists() else Path(path)
    if not path.exists():
        raise InputError(f"{path}: model file not found; train one with 'masktwins-bio train' (it writes model.pt)")
    if path.is_dir():
        cand = path / "model.pt"
        if cand.exists():
            path = cand
        elif any((path / n).is_file() for n in _PACKAGE_RDF):
            return _load_package(path, device)
        else:
            raise InputError(f"{path}: is a folder without model.pt; pass the model file")
    if _is_package(path):
        return _load_package(path, device)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():
            raise InputError(f"{path}: cannot be loaded as a masktwins-bio model (UnpicklingError); the file is "
                             "damaged or not a model file") from None
        # torch's own text suggests weights_only=False: never pass that on to a user
        raise InputError(f"{path}: cannot be loaded as a masktwins-bio model: it holds Python objects beyond tensors "
                         "and plain values, which are never unpickled (loading them could run code); pass a model.pt "
                         "written by masktwins-bio train") from None
    except Exception as exc:
        raise InputError(f"{path}: cannot be loaded as a masktwins-bio model ({type(exc).__name__}); the file is "
                         "damaged or not a model file") from None
    if not isinstance(blob, dict) or blob.get("format") not in (MODEL_FORMAT, "masktwins-bio-checkpoint"):
        raise InputError(f"{path}: is not a masktwins-bio model file (no '{MODEL_FORMAT}' header)")
    if blob["format"] == "masktwins-bio-checkpoint":
        # a training checkpoint: use the teacher (the adapted model) if present
        state = blob.get("teacher") or blob["student"]
        model_cfg = ModelConfig.model_validate(blob["config"]["model"])
        metadata = blob["model_metadata"]
    else:
        state = blob["state_dict"]
        model_cfg = ModelConfig.model_validate(blob["model"])
        metadata = blob["metadata"]
    net = _network_with_weights(model_cfg, metadata, state, path)
    net.eval().to(device)
    return LoadedModel(network=net, model_cfg=model_cfg, metadata=metadata, path=str(path), sha256=model_hash(path))


def check_model_file(path: str | os.PathLike) -> Optional[str]:
    """Why ``path`` cannot be used as a model, in one line, or ``None`` when it can - cheaply, for a GUI to ask
    before a run: a model file's tensors are memory-mapped, not read (``torch.load(mmap=True, weights_only=True)``),
    a bioimage.io package's description is read without its weights."""
    p = Path(path)
    if str(path) == STARTER and not p.exists():
        return None
    if not p.exists():
        return f"{p}: not found; choose a model.pt written by masktwins-bio train, or a bioimage.io package"
    if p.is_dir():
        if (p / "model.pt").is_file():
            p = p / "model.pt"
        elif not any((p / n).is_file() for n in _PACKAGE_RDF):
            return f"{p}: is a folder without model.pt; choose the model file"
    if p.is_dir() or _is_package(p):
        import yaml

        try:
            if p.is_dir():
                rdf_file = next(p / n for n in _PACKAGE_RDF if (p / n).is_file())
                rdf = yaml.safe_load(rdf_file.read_text())
            else:
                with zipfile.ZipFile(p) as zf:
                    name = next((n for n in _PACKAGE_RDF if n in zf.namelist()), None)
                    if name is None:
                        return f"{p}: is a zip file but not a bioimage.io package (no rdf.yaml)"
                    rdf = yaml.safe_load(zf.read(name))
        except Exception as exc:
            return f"{p}: cannot be read as a bioimage.io package ({type(exc).__name__})"
        ours = ((rdf or {}).get("config") or {}).get("masktwins_bio") if isinstance(rdf, dict) else None
        if not isinstance(ours, dict) or ours.get("format") != MODEL_FORMAT:
            return f"{p}: is a bioimage.io package not written by masktwins-bio; export one with export-bioimageio"
        return None
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return (f"{p}: is not a masktwins-bio model file (it cannot be read as one safely); choose a model.pt "
                "written by masktwins-bio train or the Adapt widget")
    if not isinstance(blob, dict) or blob.get("format") not in (MODEL_FORMAT, "masktwins-bio-checkpoint"):
        return f"{p}: is a PyTorch file but not a masktwins-bio model (no '{MODEL_FORMAT}' header)"
    return None


#: the description file of a bioimage.io package (spec 0.5 names it bioimageio.yaml or rdf.yaml)
_PACKAGE_RDF = ("rdf.yaml", "bioimageio.yaml")


def _is_package(path: Path) -> bool:
    """A zip holding a bioimage.io description (torch's own files are zips too, without one)."""
    if path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return path.suffix.lower() == ".zip"  # a damaged .zip: the package reader names the problem
    return path.suffix.lower() == ".zip" or bool(names & set(_PACKAGE_RDF))


def _load_package(path: Path, device) -> LoadedModel:
    """A bioimage.io model package (zip or unpacked folder) written by :func:`masktwins_bio.bioimageio.export_bioimageio`:
    the network and metadata come from ``config.masktwins_bio`` and the ``pytorch_state_dict`` weights (checked
    against their sha256), read with ``yaml.safe_load`` and ``torch.load(weights_only=True)``: no code runs."""
    import yaml

    def read(name: str) -> bytes:
        if path.is_dir():
            return (path / name).read_bytes()
        with zipfile.ZipFile(path) as zf:
            return zf.read(name)

    try:
        names = [p.name for p in path.iterdir()] if path.is_dir() else zipfile.ZipFile(path).namelist()
        rdf_name = next((n for n in _PACKAGE_RDF if n in names), None)
        if rdf_name is None:
            raise InputError(f"{path}: is a zip file but not a bioimage.io package (no rdf.yaml); pass a model.pt "
                             "or a package written by masktwins-bio export-bioimageio")
        rdf = yaml.safe_load(read(rdf_name))
        ours = ((rdf or {}).get("config") or {}).get("masktwins_bio") if isinstance(rdf, dict) else None
        if not isinstance(ours, dict) or ours.get("format") != MODEL_FORMAT:
            raise InputError(f"{path}: is a bioimage.io package not written by masktwins-bio (no "
                             "config.masktwins_bio); run it with bioimageio.core, or pass a masktwins-bio model")
        weights = ((rdf.get("weights") or {}).get("pytorch_state_dict") or {})
        source = weights.get("source")
        if not isinstance(source, str) or "/" in source.strip("./") or ".." in source:
            raise InputError(f"{path}: its pytorch_state_dict weights are not a file inside the package")
        data = read(source)
    except (OSError, KeyError, zipfile.BadZipFile, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the bioimage.io package ({type(exc).__name__}: {exc}); the file is "
                         "damaged or incomplete") from None
    if weights.get("sha256") and hashlib.sha256(data).hexdigest() != weights["sha256"]:
        raise InputError(f"{path}: the weights file {source} does not match its sha256 in the package; the package "
                         "is damaged - export or download it again")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model_cfg = ModelConfig.model_validate(ours["model"])
        metadata = dict(ours["metadata"])
    except Exception as exc:
        raise InputError(f"{path}: the package's masktwins-bio model cannot be read ({type(exc).__name__}); export "
                         "it again with masktwins-bio export-bioimageio") from None
    net = _network_with_weights(model_cfg, metadata, state, path)
    net.eval().to(device)
    digest = model_hash(path) if path.is_file() else hashlib.sha256(data).hexdigest()[:16]
    return LoadedModel(network=net, model_cfg=model_cfg, metadata=metadata, path=str(path), sha256=digest)
