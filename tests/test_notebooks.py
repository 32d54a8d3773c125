"""The analysis notebooks in notebooks/: committed clean, and executed end to end on small synthetic data.

Every notebook is run with nbclient in a ``python3`` kernel of this interpreter, from ``notebooks/`` (as
Jupyter does), after appending ``WORK_DIR = <tmp_path>`` to its parameters cell; a failing cell fails the
test. The kernel runs with ``MPLBACKEND=Agg`` (no display) and ``OMP_NUM_THREADS=1``: the notebooks' tiny 3D
networks gain nothing from more threads, and on a shared 2-core machine two torch threads per process were
measured to slow them down by more than 10x.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ("01_domain_gap.ipynb", "02_train_and_compare.ipynb", "03_inference_and_instances.ipynb")
# names a notebook could create in the checkout through a relative default path
STRAY = ("runs", "data", "masktwins-demo", "probability.zarr", "instances.zarr")


def _params_cell(nb):
    return [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]


def _execute(path: Path, monkeypatch, **params):
    """Run a notebook with ``params`` appended to its parameters cell; returns the executed notebook."""
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    cell = _params_cell(nb)[0]
    injected = "".join(f"{k} = {v!r}\n" for k, v in params.items())
    cell.source += "\n\n# injected by tests/test_notebooks.py\n" + injected
    before = sorted(NOTEBOOK_DIR.rglob("*"))
    stray_before = {name for name in STRAY if (REPO / name).exists()}
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()
    assert sorted(NOTEBOOK_DIR.rglob("*")) == before, "the notebook wrote into notebooks/"
    stray_after = {name for name in STRAY if (REPO / name).exists()}
    assert stray_after == stray_before, "the notebook wrote into the checkout"
    return nb


def test_the_notebooks_are_there():
    assert set(EXPECTED) <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} have outputs or execution counts; clear all outputs "
                       "before committing (see notebooks/README.md)")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_at_the_top(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = _params_cell(nb)
    assert len(tagged) == 1 and code[0] is tagged[0], "one cell tagged 'parameters': the first code cell"
    for name in ("WORK_DIR", "USE_SHARED_DATA", "DATA_ROOT"):
        assert re.search(rf"^{name} = ", tagged[0].source, re.M), f"{name} is not set in the parameters cell"
    # paths and environment come from the parameters cell only
    for cell in code[1:]:
        assert "os.environ" not in cell.source and "shared/data" not in cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_synthetic_data(path, tmp_path, monkeypatch):
    _execute(path, monkeypatch, WORK_DIR=str(tmp_path))
    if path.name == "01_domain_gap.ipynb":
        assert (tmp_path / "data" / "synthetic_small_seed0" / "sample_data.json").exists()
    elif path.name == "02_train_and_compare.ipynb":
        result = json.loads((tmp_path / "compare" / "comparison.json").read_text())
        methods = [row["method"] for row in result["table"]]
        assert methods == ["source_only", "mean_teacher", "mic", "masktwins"]
        assert all((Path(run["run_dir"]) / "log.csv").exists() for run in result["runs"])
    elif path.name == "03_inference_and_instances.ipynb":
        summary = json.loads((tmp_path / "eval_instances" / "summary.json").read_text())
        assert summary["instance"]["n_gt"] > 0
        assert (tmp_path / "instances.zarr").is_dir()


@pytest.mark.shared_data
def test_domain_gap_on_shared_data(shared_data, tmp_path, monkeypatch):
    """The USE_SHARED_DATA flag points the domain-gap notebook at the real VNC III -> FAFB pair."""
    nb = _execute(NOTEBOOK_DIR / "01_domain_gap.ipynb", monkeypatch, WORK_DIR=str(tmp_path),
                  USE_SHARED_DATA=True, DATA_ROOT=str(shared_data))
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "vnc3_drosophila_mito" in text and "fafb_mito_damitoseg" in text
    assert not (tmp_path / "data").exists(), "no synthetic data with USE_SHARED_DATA"
