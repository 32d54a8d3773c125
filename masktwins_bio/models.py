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
import io
import itertools
import os
import pickle
import platform
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
    "default_strides",
    "required_divisor",
    "LoadedModel",
    "export_model",
    "load_model",
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


@NETWORKS.register
class UNetSpec:
    """``model.name: unet``: MONAI's residual UNet with anisotropy-aware strides."""

    name = "unet"
    divisor = staticmethod(_stride_divisor)

    @staticmethod
    def build(model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size) -> nn.Module:
        from monai.networks import nets

        return nets.UNet(spatial_dims=3, in_channels=1, out_channels=out_channels, channels=tuple(model_cfg.channels),
                         strides=strides, num_res_units=model_cfg.num_res_units, norm=norm,
                         dropout=model_cfg.dropout)


@NETWORKS.register
class DynUNetSpec:
    """``model.name: dynunet``: MONAI's DynUNet, 1x3x3 kernels while z is much coarser than y/x."""

    name = "dynunet"
    divisor = staticmethod(_stride_divisor)

    @staticmethod
    def build(model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size) -> nn.Module:
        from monai.networks import nets

        vs = np.asarray(voxel_size if voxel_size is not None else (1.0, 1.0, 1.0), dtype=float)
        kernels = []
        for s in ((1, 1, 1),) + strides:
            # 1x3x3 kernels while z is much coarser than y/x, 3x3x3 once near-isotropic
            kernels.append(tuple(1 if (a == 0 and vs[0] > 2.5 * vs[1:].min()) else 3 for a in range(3)))
            vs = vs * np.asarray(s)
        return nets.DynUNet(
            spatial_dims=3, in_channels=1, out_channels=out_channels, kernel_size=kernels,
            strides=((1, 1, 1),) + strides, upsample_kernel_size=strides, filters=list(model_cfg.channels),
            norm_name=norm, dropout=model_cfg.dropout or None, res_block=model_cfg.num_res_units > 0,
        )


@NETWORKS.register
class BasicUNetSpec:
    """``model.name: basic_unet``: MONAI's BasicUNet (isotropic, five levels; ``channels`` padded to six)."""

    name = "basic_unet"
    @staticmethod
    def divisor(model_cfg: ModelConfig, voxel_size, patch_size) -> tuple[int, int, int]:
        return (16, 16, 16)

    @staticmethod
    def build(model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size) -> nn.Module:
        from monai.networks import nets

        ch = list(model_cfg.channels)
        features = tuple(ch) if len(ch) == 6 else tuple((ch + [ch[-1]] * 5)[:5]) + (ch[0],)
        with contextlib.redirect_stdout(io.StringIO()):  # BasicUNet prints its features
            return nets.BasicUNet(spatial_dims=3, in_channels=1, out_channels=out_channels, features=features,
                                  norm=norm, dropout=model_cfg.dropout)


@NETWORKS.register
class SegResNetSpec:
    """``model.name: segresnet``: MONAI's SegResNet (isotropic down-sampling by 2 per level)."""

    name = "segresnet"
    @staticmethod
    def divisor(model_cfg: ModelConfig, voxel_size, patch_size) -> tuple[int, int, int]:
        d = 2 ** (len(model_cfg.channels) - 1)
        return (d, d, d)

    @staticmethod
    def build(model_cfg: ModelConfig, strides, out_channels: int, norm, voxel_size) -> nn.Module:
        from monai.networks import nets

        n_levels = len(model_cfg.channels) - 1
        return nets.SegResNet(spatial_dims=3, in_channels=1, out_channels=out_channels,
                              init_filters=model_cfg.channels[0], blocks_down=tuple([1, 2, 2, 4, 4][: n_levels + 1]),
                              blocks_up=tuple([1, 1, 1, 1][:n_levels]), norm=norm,
                              dropout_prob=model_cfg.dropout or None)


def required_divisor(model_cfg: ModelConfig, voxel_size=None, patch_size=(16, 96, 96)) -> tuple[int, int, int]:
    """Input sizes along each axis must be multiples of this (the product of the strides)."""
    return NETWORKS[model_cfg.name].divisor(model_cfg, voxel_size, patch_size)


def build_network(model_cfg: ModelConfig, voxel_size=None, patch_size=(16, 96, 96)) -> nn.Module:
    """Build the network ``model_cfg.name`` of :data:`masktwins_bio.registry.NETWORKS`.

    Args:
        model_cfg: The ``model`` config section.
        voxel_size: Training voxel size in nm (z, y, x), used for anisotropy-aware strides/kernels.
        patch_size: Training patch size in voxels (used to keep strides valid).

    Returns:
        A module mapping ``(B, 1, Z, Y, X)`` to logits ``(B, C, Z, Y, X)`` with C = 2 (softmax) or 1 (sigmoid).
    """
    spec = NETWORKS[model_cfg.name]
    out_ch = 2 if model_cfg.head == "softmax" else 1
    n_levels = len(model_cfg.channels) - 1
    strides = tuple(tuple(s) for s in (model_cfg.strides or default_strides(voxel_size, n_levels, patch_size)))
    if len(strides) != n_levels:
        raise InputError(f"model.strides has {len(strides)} entries; it needs len(model.channels) - 1 = {n_levels}")
    norm = {"instance": "instance", "batch": "batch", "group": ("group", {"num_groups": 8})}[model_cfg.norm]
    return spec.build(model_cfg, strides, out_ch, norm, voxel_size)


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

    ``path`` may be :data:`STARTER` (``"starter"``) for the shipped starter model.

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
        else:
            raise InputError(f"{path}: is a folder without model.pt; pass the model file")
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
