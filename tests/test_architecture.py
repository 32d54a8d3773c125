"""Imports flow one way (docs/architecture.md): every import in the package - module-level and inside functions -
goes to the same package or to a lower layer, and the packages form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "masktwins_bio"

#: docs/architecture.md's table, lowest first
LAYERS = [
    {"errors", "_version"},
    {"regions", "files", "devices", "precision", "registry"},
    {"blockwise", "config"},
    {"io"},
    {"models", "data", "datasets"},
    {"methods", "inference", "postprocess", "bioimageio"},
    {"metrics"},
    {"training"},
    {"experiments"},
    {"napari", "commands", "docs", "cli", "(root)", "__main__", "masking", "demo"},  # masking, demo: deprecated aliases
]
#: deprecated aliases left where the code used to live; each may import its new home (and must warn, see below)
DEPRECATED_ALIASES = {
    ("masktwins_bio.training", "masktwins_bio.experiments"),
    ("masktwins_bio.training.ladder", "masktwins_bio.experiments.ladder"),
    ("masktwins_bio.training.harness", "masktwins_bio.experiments.harness"),
}
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def _imports():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts)
        if module.endswith(".__init__"):
            module = package = module[: -len(".__init__")]
        else:
            package = module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                yield module, ".".join(base + ([node.module] if node.module else [])), node.lineno
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("masktwins_bio"):
                yield module, node.module, node.lineno
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("masktwins_bio"):
                        yield module, alias.name, node.lineno


EDGES = sorted({(m, t, n) for m, t, n in _imports() if (m, t) not in DEPRECATED_ALIASES})


def test_every_package_has_a_layer():
    units = {_unit(m) for m, _, _ in EDGES} | {_unit(t) for _, t, _ in EDGES}
    assert not units - set(LAYER), f"add these to LAYERS and docs/architecture.md: {sorted(units - set(LAYER))}"


def test_imports_go_down_only():
    upward = [f"{m}:{n} imports {t}" for m, t, n in EDGES
              if _unit(m) != _unit(t) and LAYER.get(_unit(t), -1) > LAYER.get(_unit(m), -1)]
    same_layer = [f"{m}:{n} imports {t}" for m, t, n in EDGES
                  if _unit(m) != _unit(t) and LAYER.get(_unit(t)) == LAYER.get(_unit(m))
                  and LAYER.get(_unit(m)) != len(LAYERS) - 1]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)
    assert not same_layer, "imports between packages of one layer (give one of them a layer of its own):\n" + \
        "\n".join(same_layer)


def test_the_documented_layers_match_this_test():
    text = (ROOT.parent / "docs" / "architecture.md").read_text()
    for i, names in enumerate(LAYERS):
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| {i} |")), "")
        for name in names - {"(root)", "__main__"}:
            assert f"`{name}`" in row, f"docs/architecture.md layer {i} should list `{name}`"


def test_importing_changes_no_global_state():
    """Issue 13: data/dataset.py switched MONAI's process-wide MetaTensor tracking off at import time."""
    import subprocess
    import sys

    code = ("import monai.data as d; before = d.get_track_meta(); import masktwins_bio.config, masktwins_bio.io, "
            "masktwins_bio.data.dataset, masktwins_bio.training; assert d.get_track_meta() == before, 'changed'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("code", [
    "import masktwins_bio.training.ladder",
    "import masktwins_bio.training.harness",
    "import masktwins_bio.demo",
    "import masktwins_bio.masking",
    "from masktwins_bio.training import compare",
])
def test_deprecated_aliases_warn_and_still_work(code):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "moved to masktwins_bio" in proc.stderr, proc.stderr
    assert subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code]).returncode == 0
