"""Every command shown in README.md is exercised: here (run for real, at a tiny budget), by a named test, or by .ci/run.

A command added to README without coverage fails :func:`test_every_readme_command_is_covered`.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from masktwins_bio.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

#: README command prefix -> where it is exercised: test ids (``path::test`` or a test file / folder, checked to exist
#: by :func:`test_coverage_points_at_tests_that_exist`), ``.ci/run``, ``here`` (this file runs it), or a note
#: starting with ``doc:`` for commands that cannot run here
COVERAGE: dict[str, tuple[str, ...]] = {
    "pip install -e . && masktwins-bio demo": ("tests/experiments/test_demo.py::test_demo_writes_table_figure_and_models",
                                              ".ci/run"),
    'pip install -e ".[dev]" && pytest': (".ci/run",),
    "pip install torch --index-url": ("doc: the CUDA build choice (needs a GPU package index)",),
    'pip install -e ".[napari]"': ("tests/test_packaging.py::test_console_script_and_napari_entry_point",),
    'pip install -e ".[distributed]"': ("tests/test_blockwise.py::test_dask_equals_serial",),
    "masktwins-bio demo": ("tests/experiments/test_demo.py::test_demo_writes_table_figure_and_models",),
    "napari --plugin masktwins-bio": ("tests/experiments/test_demo.py::test_demo_outputs_open_in_the_napari_reader",),
    "napari": ("tests/napari",),
    "masktwins-bio sample-data": ("here",),
    "masktwins-bio train": ("here",),
    "masktwins-bio predict": ("here", "tests/test_models.py::test_predict_without_a_model_uses_the_starter"),
    "python scripts/make_starter_model.py": ("tests/test_models.py::test_the_starter_model_loads_safely_and_says_what_it_is",),
    "masktwins-bio segment": ("here",),
    "masktwins-bio evaluate": ("here",),
    "masktwins-bio measure": ("here", "tests/postprocess/test_measure.py::test_cli_measure"),
    'pip install -e ".[bioimageio]"': ("tests/test_bioimageio.py::test_the_package_passes_bioimageio_core_test",),
    'xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/napari_tour.py': (
        "tests/napari/test_tour.py::test_the_tour_passes_its_checks",),
    "masktwins-bio proofread": ("tests/postprocess/test_proofread.py::test_cli_proofread",),
    "masktwins-bio export-bioimageio": ("tests/test_bioimageio.py::test_cli_exports_and_refuses_with_one_line",),
    "bioimageio test": ("tests/test_bioimageio.py::test_the_package_passes_bioimageio_core_test",),
    "masktwins-bio download": ("tests/test_datasets.py::test_download_fetches_verifies_and_converts",
                               "tests/test_datasets.py::test_the_mirror_replaces_the_official_urls"),
    "MASKTWINS_DATA_ROOT=": ("tests/test_datasets.py::test_train_names_the_missing_datasets_and_the_command",),
    "masktwins-bio convert": ("tests/io/test_shared_data.py::test_vnc3_png_slices_convert_exactly",
                              "tests/io/test_convert.py::test_info_and_cli"),
    "masktwins-bio info": ("tests/io/test_convert.py::test_info_and_cli",),
    "masktwins-bio benchmark": ("tests/experiments/test_harness.py::test_benchmark_vnc3_to_fafb_small_budget",
                                "tests/experiments/test_harness.py::test_benchmark_cli_on_synthetic_pair"),
    "torchrun": ("tests/training/test_ddp.py::test_torchrun_two_processes_gloo",),
    "python benchmarks/": ("tests/test_benchmarks.py::test_inference_benchmark_runs_and_matches_monai",
                           "tests/test_benchmarks.py::test_train_step_benchmark_prints_fp32_and_auto_side_by_side",
                           "tests/test_benchmarks.py::test_adaptation_study_dry_run_and_report"),
    "python -m masktwins_bio.docs": ("tests/test_docs.py::test_configuration_reference_is_current",
                                     "tests/test_docs.py::test_cli_reference_is_current"),
    "xvfb-run -a python scripts/napari_screenshot.py": ("tests/napari",),
    "conda env create": ("tests/test_packaging.py::test_environment_yml_consistent_with_pyproject",),
    "apt-get install": (".ci/run",),
}


def _code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    cmds = []
    for block in _code_blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    # commands quoted inline, e.g. `masktwins-bio predict ... --dask`
    cmds += [c for c in re.findall(r"(?<!`)`((?:masktwins-bio|torchrun|python|xvfb-run|conda|apt-get) [^`\n]*)`(?!`)", README)]
    return cmds


def _covered_by(cmd: str) -> tuple[str, ...] | None:
    for prefix in sorted(COVERAGE, key=len, reverse=True):
        if cmd.startswith(prefix) or prefix in cmd:
            return COVERAGE[prefix]
    return None


def test_every_readme_command_is_covered():
    missing = [c for c in _commands() if _covered_by(c) is None]
    assert not missing, f"README commands without a test: {missing}; add them to COVERAGE in {__file__}"


def _test_exists(ref: str) -> bool:
    path, _, name = ref.partition("::")
    target = REPO / path
    if not name:
        return target.exists()
    return target.is_file() and re.search(rf"^(async )?def {re.escape(name)}\(", target.read_text(), re.M) is not None


def test_coverage_points_at_tests_that_exist():
    """A moved or renamed test breaks this, not silently the README's promise."""
    refs = {r for refs in COVERAGE.values() for r in refs}
    stale = sorted(r for r in refs if r not in (".ci/run", "here") and not r.startswith("doc:")
                   and not _test_exists(r))
    assert not stale, f"COVERAGE names tests that do not exist: {stale}"
    assert (REPO / ".ci" / "run").is_file()


def _fast(cmd: str) -> str:
    """The README command at a test budget: small synthetic data, 3 steps, CPU."""
    return (cmd.replace("--size small", "--size small --seed 1").replace("train.steps=200", "train.steps=3")
            .replace("configs/", f"{REPO}/configs/"))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_quickstart_commands_run_as_written(in_tmp, capsys):
    block = next(b for b in _code_blocks("bash") if "masktwins-bio sample-data" in b)
    lines = [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.startswith("masktwins-bio")]
    assert [ln.split()[1] for ln in lines] == ["sample-data", "train", "predict", "segment", "measure", "evaluate"]
    for line in lines:
        argv = shlex.split(_fast(line))[1:]
        if argv[0] == "train":
            argv += ["--set", "train.device=cpu", "--no-progress"]
        assert main(argv) == 0, line
    assert (in_tmp / "runs" / "demo" / "target_eval" / "summary.json").exists()
    assert (in_tmp / "runs" / "demo" / "mito.csv").exists() and (in_tmp / "runs" / "demo" / "mito.csv.json").exists()
    assert "iou" in capsys.readouterr().out.lower()


def test_python_quickstart_runs_as_written(in_tmp):
    block = next(b for b in _code_blocks("python") if "import masktwins_bio as mtb" in b)
    code = _fast(block).replace('"train.steps=3"]', '"train.steps=3", "train.device=cpu"]')
    namespace: dict = {}
    exec(compile(code, "README.md (python quickstart)", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["summary"]["semantic"]["whole_volume"]["iou"] >= 0
    assert list(namespace["table"].columns)[:3] == ["label", "voxels", "volume_um3"]
    assert os.path.exists("target_mito.csv")
    assert os.path.exists("target_instances.zarr")
