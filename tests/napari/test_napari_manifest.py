"""The npe2 manifest: valid, discovered through the entry point, listed by ``npe2 list``, every command importable."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

npe2 = pytest.importorskip("npe2")

import masktwins_bio.napari  # noqa: E402

MANIFEST = Path(masktwins_bio.napari.__file__).with_name("napari.yaml")


def _npe2_cli():
    exe = shutil.which("npe2") or str(Path(sys.executable).with_name("npe2"))
    if not Path(exe).exists():
        pytest.skip("npe2 command line not installed")
    return exe


def test_manifest_contributions():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "masktwins-bio"
    c = manifest.contributions
    assert len(c.readers) == 1 and c.readers[0].accepts_directories
    assert {"*.zarr", "*.h5", "*.hdf5", "*.tif", "*.tiff"} <= set(c.readers[0].filename_patterns)
    assert sorted(w.layer_types[0] for w in c.writers) == ["image", "labels"]
    assert [w.display_name for w in c.widgets] == ["Predict", "Adapt (MaskTwins)", "Inspect", "Proofread"]
    assert len(c.sample_data) == 2


def test_commands_importable():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    for command in manifest.contributions.commands:
        module, name = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), name)), command.python_name


def test_discovered_through_entry_point():
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert pm.get_manifest("masktwins-bio").display_name == "MaskTwins EM segmentation"


def test_npe2_list_and_validate():
    exe = _npe2_cli()
    listed = subprocess.run([exe, "list"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "masktwins-bio" in listed.stdout
    valid = subprocess.run([exe, "validate", "masktwins-bio"], capture_output=True, text=True, timeout=120)
    assert valid.returncode == 0, valid.stdout + valid.stderr
