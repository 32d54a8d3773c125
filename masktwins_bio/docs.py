"""Reference documentation generated from the code: the configuration schema and the command line.

``python -m masktwins_bio.docs`` rewrites ``docs/configuration.md`` and ``docs/cli.md``; a test fails when the
committed files differ from what the code generates, so the reference can never drift from the schema or the
argument parsers.
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from . import config as config_module
from .config import Config
from .registry import Registry

__all__ = ["configuration_reference", "cli_reference", "write_docs"]


def _field_docs(cls: type) -> dict[str, str]:
    """``name -> description`` from the ``Attributes:`` section of a Google-style class docstring."""
    doc = inspect.getdoc(cls) or ""
    if "Attributes:" not in doc:
        return {}
    out: dict[str, str] = {}
    current = None
    for line in doc.split("Attributes:", 1)[1].splitlines():
        m = re.match(r"^ {4}(\w+):\s*(.*)$", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.startswith(" " * 8):
            out[current] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return {k: " ".join(v.split()) for k, v in out.items()}


def _type_name(annotation, metadata=()) -> str:
    registry = next((m for m in metadata if isinstance(m, Registry)), None)
    if registry is not None:
        return "a registered name: " + ", ".join(f"'{n}'" for n in registry.names())
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    text = re.sub(r"masktwins_bio\.config\.(\w+)", r"\1", text)
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    return text.replace("|", "or")


def _md(text: str) -> str:
    """Docstring (reST) literals to Markdown."""
    return re.sub(r":(class|meth|func|data):", "", text.replace("``", "`"))


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{value!r}`" if not isinstance(value, str) else f'`"{value}"`'


def _section(cls: type[BaseModel], prefix: str, lines: list[str], seen: set) -> None:
    docs = _field_docs(cls)
    summary = _md((inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " "))
    lines += [f"### `{prefix or 'top level'}`", "", summary, "", "| key | type | default | meaning |",
              "|---|---|---|---|"]
    subsections = []
    for name, field in cls.model_fields.items():
        sub = _submodel(field.annotation)
        key = f"{prefix}.{name}" if prefix else name
        if sub is not None:
            subsections.append((sub, key))
        meaning = docs.get(name) or (f"see `{key}` below" if sub else "")
        lines.append(f"| `{key}` | {_type_name(field.annotation, field.metadata)} | {_default(field)} | {_md(meaning)} |")
    lines.append("")
    for sub, key in subsections:
        if (sub, key) not in seen:
            seen.add((sub, key))
            _section(sub, key, lines, seen)


def _submodel(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def configuration_reference() -> str:
    """Markdown reference of every config key: type, default and meaning (from the schema's docstrings)."""
    lines = ["# Configuration reference", "",
             "Generated from `masktwins_bio/config/schema.py` by `python -m masktwins_bio.docs`; do not edit by hand.", "",
             *[x for p in (inspect.getdoc(config_module) or "").split("\n\n")[1:] for x in (_md(p.replace("\n", " ")), "")],
             "Override any key on the command line with `--set key=value` (YAML syntax), e.g. "
             "`--set train.steps=500 --set data.patch_size=[16,128,128]`.", ""]
    _section(Config, "", lines, set())
    return "\n".join(lines).rstrip() + "\n"


def cli_reference() -> str:
    """Markdown reference of every command's ``--help``."""
    import os

    from .cli import COMMANDS, build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width; the reference must not depend on it
    try:
        return _cli_reference(build_parser(), COMMANDS)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _cli_reference(parser, commands) -> str:
    lines = ["# Command-line reference", "",
             "Generated from the argument parsers by `python -m masktwins_bio.docs`; do not edit by hand.", "",
             "```text", parser.format_help().rstrip(), "```", ""]
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in commands:
        cmd = name.replace("_", "-")
        lines += [f"## `masktwins-bio {cmd}`", "", "```text", sub.choices[cmd].format_help().rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_docs(folder: str | Path = "docs") -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in (("configuration.md", configuration_reference()), ("cli.md", cli_reference())):
        path = folder / name
        path.write_text(text)
        out.append(path)
    return out


if __name__ == "__main__":  # pragma: no cover
    for p in write_docs(sys.argv[1] if len(sys.argv) > 1 else "docs"):
        print(f"wrote {p}")
