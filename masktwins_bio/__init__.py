"""masktwins-bio: domain-adaptive 3D segmentation of electron-microscopy volumes with MaskTwins.

The public API (one library under the CLI, the napari plugin and the notebooks)::

    import masktwins_bio as mtb
    paths = mtb.sample_data("data/synthetic", size="small")        # synthetic source/target pair
    vol = mtb.open_volume("vol.zarr")                               # lazy (z, y, x) + voxel size (nm)
    cfg = mtb.load_config("configs/demo.yaml", ["train.steps=200"])
    result = mtb.train(cfg)                                         # -> run dir with model.pt
    mtb.predict("runs/demo/model.pt", "target.zarr", "prob.zarr")   # blockwise, resumable
    mtb.segment("prob.zarr", "instances.zarr")                      # chunk-consistent instances
    table = mtb.measure("instances.zarr", "vol.zarr")               # per-mitochondrion morphology
    table.save("mito.csv")
    pr = mtb.Proofreader("instances.zarr"); pr.merge([3, 8]); pr.save()  # proofreading with undo
    mtb.export_bioimageio("runs/demo/model.pt", "model.zip")        # share as a bioimage.io package
    summary = mtb.evaluate("instances.zarr", "gt.zarr")             # streamed metrics, summary.json

Heavy submodules are imported on first use, so ``import masktwins_bio`` stays fast.
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import ConfigError, InputError, UserError

_LAZY = {
    "open_volume": ("io", "open_volume"),
    "Volume": ("io", "Volume"),
    "convert_volume": ("io", "convert_volume"),
    "volume_info": ("io", "volume_info"),
    "write_ome_zarr": ("io", "write_ome_zarr"),
    "load_config": ("config", "load_config"),
    "Config": ("config", "Config"),
    "load_model": ("models", "load_model"),
    "sample_data": ("data.synthetic", "sample_data"),
    "train": ("training", "train"),
    "compare": ("experiments", "compare"),
    "predict": ("inference", "predict"),
    "segment": ("postprocess", "segment"),
    "measure": ("postprocess", "measure"),
    "Proofreader": ("postprocess", "Proofreader"),
    "export_bioimageio": ("bioimageio", "export_bioimageio"),
    "evaluate": ("metrics", "evaluate"),
}

__all__ = ["__version__", "UserError", "ConfigError", "InputError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'masktwins_bio' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
