"""Packaging: README's two commands, CI running exactly them, environment.yml consistent with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from masktwins_bio.config import load_config
from masktwins_bio.experiments import demo_config

REPO = Path(__file__).resolve().parents[1]
DEMO_COMMAND = "pip install -e . && masktwins-bio demo"
TEST_COMMAND = 'pip install -e ".[dev]" && pytest'


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_readme_starts_with_the_two_commands():
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert blocks[0].strip() == DEMO_COMMAND
    assert blocks[1].strip() == TEST_COMMAND


def test_ci_runs_the_readme_test_command_in_a_fresh_venv():
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci and "pip install -q torch==2.13.0" in ci
    assert TEST_COMMAND in ci.splitlines()


def test_ci_also_runs_the_napari_tests_with_the_default_torch_wheel():
    # the default (CUDA) wheel bundles triton, whose import after OpenGL is up segfaulted the napari tests
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    second = ci[ci.index(TEST_COMMAND) + 1:]
    assert any(line.startswith('pip install -q -e ".[dev]"') and "pytest -q tests/napari" in line for line in second)
    assert not any("torch==" in line for line in second)


def test_no_upper_version_pins():
    project = pyproject()["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    assert not [d for d in deps if "<" in d or "==" in d]


def test_console_script_and_napari_entry_point():
    project = pyproject()["project"]
    assert project["scripts"]["masktwins-bio"] == "masktwins_bio.cli:main"
    assert project["entry-points"]["napari.manifest"]["masktwins-bio"] == "masktwins_bio.napari:napari.yaml"


def test_environment_yml_consistent_with_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    project = pyproject()["project"]
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    # pyproject.toml is the single source of truth: conda adds nothing but Python and pip
    assert [d for d in deps if isinstance(d, str)] == [python, "pip"]
    assert len(pip) == 1
    extras = re.fullmatch(r'-e "\.\[([a-z,]+)\]"', pip[0]).group(1).split(",")
    assert set(extras) <= set(project["optional-dependencies"])


def test_demo_yaml_is_the_demo_config():
    shipped = load_config(REPO / "configs" / "demo.yaml")
    assert shipped.resolved() == demo_config("data/synthetic", "runs/demo").resolved()
