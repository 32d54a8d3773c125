"""Share a model as a bioimage.io package (the format ilastik, deepImageJ, bioimageio.core and napari plugins run).

:func:`export_bioimageio` writes a model package (a zip: ``rdf.yaml`` of bioimage.io model spec 0.5 plus files):

- **weights**: ``pytorch_state_dict`` with the architecture named as the MONAI class and its keyword arguments
  (``monai.networks.nets.UNet(...)``: no masktwins-bio code is needed to run it), and ``torchscript`` where the
  network traces (deepImageJ and Java tools run that one);
- **tensors**: input ``raw`` (batch, channel, z, y, x) with the voxel size in nm on the spatial axes and the sizes
  the network accepts (the training patch, growing in steps of its down-sampling factor), the model's intensity
  normalisation as bioimage.io preprocessing, output ``probabilities`` (background, mitochondria) after softmax
  (or sigmoid), with a halo to crop from each tile;
- **test tensors** (an input and the output this network gives for it, which ``bioimageio.core`` checks), a cover
  image, a README with training domains and method, the citations (MaskTwins, the training data named in the model)
  and, under ``config.masktwins_bio``, the model file's own metadata, so that :func:`masktwins_bio.models.load_model`
  reads the package back exactly (``predict``, Adapt's "start from" and the Predict widget accept it).

Normalisation: masktwins-bio normalises each volume by its own statistics; bioimage.io tools normalise each tile
(``zero_mean_unit_variance`` over z, y, x), close for tiles of the training patch size or larger. A model trained with
``data.normalization: histogram`` (a reference histogram) has no bioimage.io equivalent and is refused.
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .errors import InputError
from .files import atomic_file
from .models import LoadedModel, load_model, network_architecture, required_divisor

__all__ = ["export_bioimageio", "MASKTWINS_CITATION"]

#: the method's paper (ICML 2025)
MASKTWINS_CITATION = {
    "text": "Wang J, Chen Y, Liu X, Liu C, Liu D, Gao J, Xiong Z. Dual-form Complementary Masking for Domain-Adaptive "
            "Image Segmentation (MaskTwins). ICML 2025.",
    "url": "https://arxiv.org/abs/2507.12008",
}
#: the toolkit and the architecture library
_MONAI_CITATION = {"text": "MONAI Consortium. MONAI: Medical Open Network for AI.",
                   "url": "https://doi.org/10.5281/zenodo.4323058"}

_ZMUV_EPS = 1e-6  # bioimage.io's default epsilon of zero_mean_unit_variance


def _test_input(model: LoadedModel, image, voxel_size=None) -> np.ndarray:
    """A (z, y, x) float32 crop of the training patch size: the centre of ``image`` (an array on the model's grid, or
    a path / :class:`~masktwins_bio.io.Volume` resampled onto it), or a synthetic volume imaged on the model's grid
    (license-clean, deterministic)."""
    shape = model.patch_size
    if image is None:
        from .data.synthetic import SOURCE_STYLE, generate_volume

        style = dataclasses.replace(SOURCE_STYLE, voxel_size=model.voxel_size)
        image, _ = generate_volume(shape, style, seed=0)
    if not isinstance(image, np.ndarray):
        from .io import as_volume

        vol = as_volume(image, voxel_size=voxel_size, role="test image")
        if vol.voxel_size is None:
            raise InputError(f"{vol.path}: the test image has no voxel size; pass --test-voxel-size Z,Y,X (nm)")
        image = vol.resampled(model.voxel_size) if tuple(vol.voxel_size) != tuple(model.voxel_size) else vol
    if len(image.shape) != 3 or any(d < s for d, s in zip(image.shape, shape)):
        raise InputError(f"test image of shape {tuple(image.shape)} on the model's grid: it needs at least the "
                         f"model's patch size {shape} (z, y, x)")
    start = [(d - s) // 2 for d, s in zip(image.shape, shape)]
    return np.ascontiguousarray(image[tuple(slice(a, a + s) for a, s in zip(start, shape))], dtype=np.float32)


def _preprocess(x: np.ndarray, mode: str) -> np.ndarray:
    """What the bioimage.io preprocessing below computes, applied here to make the test output."""
    if mode == "zscore":
        return (x - x.mean()) / (x.std() + _ZMUV_EPS)
    lo, hi = np.percentile(x, [1.0, 99.0])
    return 2.0 * (x - lo) / (hi - lo + _ZMUV_EPS) - 1.0


def _cover(image: np.ndarray, prob: np.ndarray, path: Path) -> None:
    """A 2:1 cover: the middle section of the test input beside the mitochondria probability (magenta overlay)."""
    from PIL import Image

    z = image.shape[0] // 2
    raw = image[z]
    raw = np.clip((raw - np.percentile(raw, 1)) / (np.ptp(np.percentile(raw, [1, 99])) + 1e-6), 0, 1)
    grey = np.stack([raw] * 3, axis=-1)
    p = prob[z][..., None]
    overlay = grey * (1 - 0.6 * p) + 0.6 * p * np.array([1.0, 0.0, 1.0])
    tile = np.concatenate([grey, overlay], axis=1)
    img = Image.fromarray((tile * 255).astype(np.uint8))
    h = 256
    img.resize((2 * h, h), Image.Resampling.NEAREST).save(path)


def _readme(model: LoadedModel, name: str) -> str:
    training = model.metadata.get("training") or {}
    lines = [f"# {name}", "", "A 3D mitochondria segmentation model for electron microscopy, trained with "
             "[masktwins-bio](https://github.com/masktwins-bio/masktwins-bio).", ""]
    if model.metadata.get("starter"):
        lines += ["**A starting point for adaptation, not a generalist model**: trained on masktwins-bio's synthetic "
                  "EM only. Adapt it to your volume (`masktwins-bio train`, napari Adapt) before relying on it.", ""]
    lines += ["| | |", "|---|---|",
              f"| voxel size (z, y, x) | {' x '.join(f'{v:g}' for v in model.voxel_size)} nm |",
              f"| training patch | {' x '.join(str(v) for v in model.patch_size)} voxels |",
              f"| network | {model.model_cfg.name}, channels {list(model.model_cfg.channels)} |",
              f"| output | {model.model_cfg.head} over (background, mitochondria) |",
              f"| normalisation | {(model.metadata.get('normalization') or {}).get('mode', 'zscore')} |"]
    for key in ("method", "source", "target", "steps"):
        if training.get(key) is not None:
            lines.append(f"| training {key} | {training[key]} |")
    lines += ["", "Inputs must be resampled to the voxel size above; run large volumes tile by tile with the halo "
              "given in the description (masktwins-bio `predict` does both).", "",
              "Cite MaskTwins (Wang et al., ICML 2025) and the datasets the model was trained on.", ""]
    return "\n".join(lines)


def export_bioimageio(
    model: Union[str, os.PathLike, LoadedModel],
    output: Union[str, os.PathLike],
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    authors: Optional[Sequence[str]] = None,
    license: str = "CC-BY-4.0",
    test_image=None,
    test_voxel_size: Optional[Sequence[float]] = None,
    torchscript: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a model as a bioimage.io model package (zip).

    Args:
        model: A model file (``model.pt``, a training checkpoint, ``"starter"``) or a loaded model.
        output: The package to write, ``*.zip``.
        name: The model's name (default: from the file name and the training method).
        description: One-paragraph description (default: generated from the metadata).
        authors: Author names (default: the current user's login name).
        license: SPDX licence id of the weights (default CC-BY-4.0, bioimage.io's recommendation).
        test_image: Whose centre is the test input: a (z, y, x) array on the model's voxel grid, or a path spec /
            volume (resampled onto that grid); at least the training patch size there. Default: synthetic EM on the
            model's grid (license-clean).
        test_voxel_size: Voxel size of ``test_image`` in nm, overriding its metadata.
        torchscript: Also trace TorchScript weights (skipped with a note when the network does not trace).
        overwrite: Replace an existing ``output``.

    Returns:
        The package path.

    Raises:
        InputError: not a model, a histogram-normalised model, an existing output, a too-small test image, or the
            package failing bioimage.io validation.
    """
    from .io.guard import check_parent, refuse_existing

    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise InputError("export-bioimageio needs bioimageio.spec: pip install 'masktwins-bio[bioimageio]'") from None
    out = Path(output)
    if out.suffix != ".zip":
        raise InputError(f"{out}: a bioimage.io package is a .zip file; name the output e.g. model.bioimageio.zip")
    if out.exists() and not overwrite:
        refuse_existing(out, "bioimage.io package")
    check_parent(out)
    _check_license(license)
    lm = model if isinstance(model, LoadedModel) else load_model(model)
    mode = (lm.metadata.get("normalization") or {}).get("mode", "zscore")
    if mode not in ("zscore", "percentile"):
        raise InputError(f"{lm.path}: trained with data.normalization {mode!r}, which bioimage.io preprocessing "
                         "cannot express; export a model trained with zscore or percentile normalisation")
    import_from, callable_name, kwargs = network_architecture(lm.model_cfg, lm.voxel_size, lm.patch_size)
    net = lm.network.to("cpu").eval()
    x = _test_input(lm, test_image, test_voxel_size)
    with torch.no_grad():
        logits = net(torch.from_numpy(_preprocess(x, mode)[None, None].astype(np.float32)))
        probs = (torch.sigmoid(logits) if lm.model_cfg.head == "sigmoid" else torch.softmax(logits, dim=1)).numpy()
    training = lm.metadata.get("training") or {}
    method = training.get("method")
    name = name or ("masktwins-bio starter model" if lm.metadata.get("starter") else
                    f"masktwins-bio {method or 'trained'} mitochondria model")
    with tempfile.TemporaryDirectory(prefix="masktwins-bioimageio-") as tmp:
        work = Path(tmp)
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, work / "weights.pt")
        np.save(work / "test_input.npy", x[None, None])
        np.save(work / "test_output.npy", probs.astype(np.float32))
        _cover(x, probs[0, -1], work / "cover.png")
        (work / "README.md").write_text(_readme(lm, name))
        traced = None
        if torchscript:
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    # shape checks inside MONAI's layers become constants: expected (bioimageio.core's test runs the traced model at other sizes too)
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    traced = torch.jit.trace(net, torch.from_numpy(_preprocess(x, mode)[None, None]))
                traced.save(str(work / "weights_torchscript.pt"))
            except Exception as exc:  # a network that does not trace still exports its state dict
                traced = None
                print(f"note: TorchScript weights skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        descr = _describe(lm, work, name=name, description=description, authors=authors, license=license,
                          mode=mode, arch=(import_from, callable_name, kwargs), torchscript=traced is not None)
        from bioimageio.spec import save_bioimageio_package

        with atomic_file(out) as tmp_zip:
            save_bioimageio_package(descr, output_path=Path(tmp_zip))
    return out


def _check_license(license: str) -> None:
    """Refuse a licence bioimage.io does not know before any work (its list is SPDX's)."""
    from bioimageio.spec.model import v0_5 as bio
    from pydantic import TypeAdapter

    try:
        TypeAdapter(bio.ModelDescr.model_fields["license"].annotation).validate_python(license)
    except Exception:
        raise InputError(f"--license {license!r} is not an SPDX licence id bioimage.io accepts; use e.g. CC-BY-4.0, "
                         "CC0-1.0, MIT or Apache-2.0") from None


def _describe(lm: LoadedModel, work: Path, *, name, description, authors, license, mode, arch, torchscript: bool):
    """The bioimage.io model description (spec 0.5) of the files in ``work``."""
    from bioimageio.spec.model import v0_5 as bio

    from .files import plain

    divisor = required_divisor(lm.model_cfg, lm.voxel_size, lm.patch_size)
    halo = [max(0, min(p // 8, (p - 1) // 2)) for p in lm.patch_size]
    space_in, space_out = [], []
    for axis, p, d, v, h in zip("zyx", lm.patch_size, divisor, lm.voxel_size, halo):
        space_in.append(bio.SpaceInputAxis(id=bio.AxisId(axis), size=bio.ParameterizedSize(min=int(p), step=int(d)),
                                           scale=float(v), unit="nanometer"))
        space_out.append(bio.SpaceOutputAxisWithHalo(
            id=bio.AxisId(axis), size=bio.SizeReference(tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(axis)),
            halo=int(h), scale=float(v), unit="nanometer"))
    if mode == "zscore":
        pre = [bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32")),
               bio.ZeroMeanUnitVarianceDescr(kwargs=bio.ZeroMeanUnitVarianceKwargs(
                   axes=[bio.AxisId(a) for a in "zyx"], eps=_ZMUV_EPS))]
    else:  # [p1, p99] -> [-1, 1]
        pre = [bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32")),
               bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(axes=[bio.AxisId(a) for a in "zyx"],
                                                               min_percentile=1.0, max_percentile=99.0,
                                                               eps=_ZMUV_EPS)),
               bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=2.0, offset=-1.0))]
    head = lm.model_cfg.head
    channels = ["background", "mitochondria"] if head == "softmax" else ["mitochondria"]
    post = ([bio.SoftmaxDescr(kwargs=bio.SoftmaxKwargs(axis=bio.AxisId("channel")))] if head == "softmax"
            else [bio.SigmoidDescr()])
    inputs = [bio.InputTensorDescr(
        id=bio.TensorId("raw"), description="EM image at the voxel size of the spatial axes (nm)",
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("raw")]), *space_in],
        test_tensor=bio.FileDescr(source=work / "test_input.npy"), preprocessing=pre)]
    outputs = [bio.OutputTensorDescr(
        id=bio.TensorId("probabilities"), description=f"class probabilities ({head})",
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier(c) for c in channels]), *space_out],
        test_tensor=bio.FileDescr(source=work / "test_output.npy"), postprocessing=post)]
    import_from, callable_name, kwargs = arch
    weights = {"pytorch_state_dict": bio.PytorchStateDictWeightsDescr(
        source=work / "weights.pt", pytorch_version=bio.Version(torch.__version__.split("+")[0]),
        architecture=bio.ArchitectureFromLibraryDescr(callable=bio.Identifier(callable_name), import_from=import_from,
                                                      kwargs=kwargs))}
    if torchscript:
        weights["torchscript"] = bio.TorchscriptWeightsDescr(
            source=work / "weights_torchscript.pt", pytorch_version=bio.Version(torch.__version__.split("+")[0]),
            parent="pytorch_state_dict")
    training = lm.metadata.get("training") or {}
    if description is None:
        description = (f"3D mitochondria segmentation for electron microscopy at "
                       f"{' x '.join(f'{v:g}' for v in lm.voxel_size)} nm (z, y, x), "
                       + ("a starting point for adaptation trained on synthetic EM only"
                          if lm.metadata.get("starter") else
                          f"trained with masktwins-bio ({training.get('method') or 'unknown method'})") + ".")
    cite = [bio.CiteEntry(text=MASKTWINS_CITATION["text"], url=MASKTWINS_CITATION["url"]),
            bio.CiteEntry(text=_MONAI_CITATION["text"], url=_MONAI_CITATION["url"])]
    for entry in training.get("cite") or []:
        if isinstance(entry, dict) and entry.get("text") and (entry.get("url") or entry.get("doi")):
            cite.append(bio.CiteEntry(**{k: entry[k] for k in ("text", "url", "doi") if k in entry}))
    config_meta = {"format": "masktwins-bio-model", "model": lm.model_cfg.model_dump(mode="json"),
                   "metadata": plain(lm.metadata), "source_sha256": _sha256(lm.path),
                   "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        return bio.ModelDescr(
            name=name, description=description, covers=[bio.FileDescr(source=work / "cover.png")],
            documentation=bio.FileDescr(source=work / "README.md"),
            authors=[bio.Author(name=a) for a in (authors or [getpass.getuser()])], cite=cite,
            license=license, tags=["electron-microscopy", "mitochondria", "3d", "semantic-segmentation",
                                   "domain-adaptation", "masktwins", "pytorch", "monai"],
            inputs=inputs, outputs=outputs, weights=bio.WeightsDescr(**weights),
            config={"masktwins_bio": config_meta})
    except Exception as exc:  # pydantic's ValidationError: name the first problem in one line
        errors = getattr(exc, "errors", None)
        if os.environ.get("MASKTWINS_DEBUG"):
            raise
        first = errors()[0] if callable(errors) else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = " ".join(str(first.get("msg", "")).split())
        msg = msg if len(msg) <= 200 else msg[:200] + "..."
        raise InputError(f"the bioimage.io description is invalid at {where or 'the top level'}: {msg} (check "
                         "--name, --description and --author)") from None


def _sha256(path) -> Optional[str]:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None

