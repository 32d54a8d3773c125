"""The generated references in docs/ match the code (regenerate with `python -m masktwins_bio.docs`)."""

from __future__ import annotations

from pathlib import Path

from masktwins_bio.docs import cli_reference, configuration_reference

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_reference_is_current():
    assert (DOCS / "configuration.md").read_text() == configuration_reference(), \
        "docs/configuration.md is stale: run python -m masktwins_bio.docs"


def test_cli_reference_is_current():
    assert (DOCS / "cli.md").read_text() == cli_reference(), "docs/cli.md is stale: run python -m masktwins_bio.docs"


def test_every_config_key_is_documented():
    text = configuration_reference()
    assert "| `method.lambda_cm` |" in text and "| `train.max_minutes` |" in text
    undocumented = [line for line in text.splitlines() if line.startswith("| `") and line.rstrip().endswith("|  |")]
    assert not undocumented, undocumented
