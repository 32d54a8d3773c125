"""The command line: help for every command, and every bad input -> one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from masktwins_bio import __version__
from masktwins_bio.cli import COMMANDS, main


def run_cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "masktwins_bio.cli", *map(str, args)], capture_output=True,
                          cwd=cwd, timeout=300)
    # decode without universal newlines: progress bars redraw with "\r", which text mode would turn into "\n"
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"masktwins-bio {__version__}"


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in COMMANDS])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: masktwins-bio {command}") and "not implemented" not in out


def _assert_clean_failure(proc, *needles):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # what a terminal shows: progress bars redraw with carriage returns and clear themselves on error
    shown = [line.split("\r")[-1].strip() for line in proc.stderr.split("\n")]
    shown = [line for line in shown if line]
    assert "Traceback" not in proc.stderr and len(shown) == 1, proc.stderr
    err = shown[0]
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def files(tmp_path):
    stack = np.random.default_rng(0).integers(0, 255, (4, 16, 16), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "ok.tif", stack)
    tifffile.imwrite(tmp_path / "flat.tif", stack[0])
    tifffile.imwrite(tmp_path / "float.tif", stack.astype(np.float32))
    tifffile.imwrite(tmp_path / "neg.tif", -stack.astype(np.int16))
    (tmp_path / "bad.tif").write_bytes(b"II*\x00broken")
    (tmp_path / "v.nrrd").write_bytes(b"NRRD")
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["raw"] = stack
        f["labels"] = stack
    (tmp_path / "empty").mkdir()
    (tmp_path / "mixed").mkdir()
    Image.fromarray(stack[0]).save(tmp_path / "mixed" / "0.png")
    Image.fromarray(stack[0, :8]).save(tmp_path / "mixed" / "1.png")
    (tmp_path / "corrupt").mkdir()
    Image.fromarray(stack[0]).save(tmp_path / "corrupt" / "0.png")
    (tmp_path / "corrupt" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\nnonsense")
    (tmp_path / "exists.zarr").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "args, needles",
    [
        (["convert", "{d}/missing.tif", "{d}/o.zarr"], ["missing.tif: no such file"]),
        (["convert", "{d}/v.nrrd", "{d}/o.zarr"], ["unsupported format '.nrrd'"]),
        (["convert", "{d}/two.h5", "{d}/o.zarr"], ["needs a dataset key", "two.h5:/labels"]),
        (["convert", "{d}/two.h5:/nope", "{d}/o.zarr"], ["no dataset '/nope'", "/raw"]),
        (["convert", "{d}/flat.tif", "{d}/o.zarr"], ["2D image", "3D (z, y, x) volume is needed"]),
        (["convert", "{d}/float.tif", "{d}/o.zarr", "--labels"], ["labels must be integers"]),
        (["convert", "{d}/neg.tif", "{d}/o.zarr", "--labels"], ["negative"]),
        (["convert", "{d}/ok.tif", "{d}/o.zarr", "--voxel-size", "0,4,4"], ["--voxel-size", "positive"]),
        (["convert", "{d}/ok.tif", "{d}/o.zarr", "--voxel-size", "4,4"], ["--voxel-size", "three numbers"]),
        # a negative value once read as an option ("expected one argument"): now its own check names the problem
        (["convert", "{d}/ok.tif", "{d}/o.zarr", "--voxel-size", "-1,1,1"], ["--voxel-size", "'-1,1,1'", "positive"]),
        (["convert", "{d}/empty", "{d}/o.zarr"], ["empty: folder contains no PNG or TIFF slices"]),
        (["convert", "{d}/mixed", "{d}/o.zarr"], ["slices have different shapes"]),
        (["convert", "{d}/corrupt", "{d}/o.zarr"], ["1.png", "corrupt"]),
        (["convert", "{d}/bad.tif", "{d}/o.zarr"], ["bad.tif: cannot be read as TIFF"]),
        (["convert", "{d}/ok.tif", "{d}/exists.zarr"], ["already exists", "--overwrite"]),
        (["convert", "{d}/ok.tif", "{d}/o.png"], ["unknown output format", ".tif (OME-TIFF)"]),
        (["info", "{d}/missing.zarr"], ["no such file"]),
        (["train", "{d}/missing.yaml"], ["config file not found"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input(files, args, needles):
    proc = run_cli(*[a.format(d=files) for a in args])
    _assert_clean_failure(proc, *needles)
    assert not (files / "o.zarr").exists()
    assert not any(".partial" in p.name for p in files.iterdir())


def test_convert_overwrite_replaces(files):
    proc = run_cli("convert", files / "ok.tif", files / "exists.zarr", "--overwrite", "--voxel-size", "30,8,8")
    assert proc.returncode == 0, proc.stderr
    assert "voxel size (nm)  30 x 8 x 8" in proc.stdout


def test_every_command_takes_no_progress_and_quiet():
    """Issue 15: the same quietness options everywhere (convert once refused --no-progress)."""
    from masktwins_bio.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert {"--no-progress", "--quiet", "-q"} <= set(parser._option_string_actions), name


def test_quiet_prints_nothing_but_errors(tmp_path, capsys):
    from masktwins_bio.io import write_ome_zarr

    write_ome_zarr(tmp_path / "v.zarr", np.zeros((2, 8, 8), np.uint8), voxel_size=(40, 8, 8))
    assert main(["info", str(tmp_path / "v.zarr"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["info", str(tmp_path / "missing.zarr"), "-q"]) == 2
    assert "no such file" in capsys.readouterr().err
