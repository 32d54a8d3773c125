"""Loading configurations: YAML (``yaml.safe_load``), ``${VAR}`` expansion, ``--set`` overrides and one-line errors."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .schema import Config

__all__ = ["load_config", "apply_overrides", "config_from_dict", "expand_env"]

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def expand_env(value: str, where: str = "") -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in a string."""

    def repl(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ and os.environ[name] != "":
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable {name} is not set; set it (export {name}=...) or write ${{{name}:-default}}"
        )

    return _ENV_RE.sub(repl, value)


def _expand_tree(obj: Any, where: str) -> Any:
    if isinstance(obj, str):
        return expand_env(obj, where)
    if isinstance(obj, dict):
        return {k: _expand_tree(v, where) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_expand_tree(v, where) for v in obj]
    return obj


def _valid_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Valid field names at a location of the schema (for 'did you mean' suggestions)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        sub = _model_in(ann)
        if sub is None:
            return []
        current = sub
    return list(current.model_fields)


def _model_in(annotation) -> Optional[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _describe_type_error(err: dict) -> str:
    msg = err["msg"]
    msg = msg.replace("Input should be", "expected").replace("Value error, ", "")
    return msg


def _format_validation_error(exc: ValidationError, source: str, schema: type[BaseModel] = None) -> str:
    schema = schema or Config
    messages = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc) if loc else "(top level)"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            valid = _valid_keys(schema, loc)
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f"did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?" if close else (
                f"valid keys here: {', '.join(valid)}" if valid else "remove it"
            )
            messages.append(f"unknown key '{dotted}' ({hint})")
        elif err["type"] == "missing" and loc and isinstance(loc[-1], int):  # a too-short list, e.g. 2 voxel sizes
            parent, got = ".".join(str(p) for p in loc[:-1]), err.get("input")
            n = len(got) if isinstance(got, (list, tuple)) else 1
            messages.append(f"{parent}: {n} value{'s' * (n != 1)} given, expected at least {loc[-1] + 1} "
                            f"(z, y, x for sizes), got {got!r}")
        elif err["type"] == "missing":
            messages.append(f"missing required key '{dotted}'")
        elif not loc:
            messages.append(_describe_type_error(err))
        else:
            got = err.get("input")
            got_s = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 60 else type(got).__name__
            messages.append(f"{dotted}: {_describe_type_error(err)}, got {got_s}")
    return f"{source}: " + "; ".join(messages)


def config_from_dict(data: dict, source: str = "config") -> Config:
    """Validate a plain dict into a :class:`Config`, raising :class:`ConfigError` with a one-line message."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values, got {type(data).__name__}")
    data = _expand_tree(data, source)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def _parse_override_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, (int, float)) and ":" in text:
        return text  # YAML 1.1 reads "1:2" as the sexagesimal number 62; a ROI like that is meant as text
    return value


def apply_overrides(data: dict, overrides: list[str], source: str = "--set") -> dict:
    """Apply ``a.b=c`` overrides (values parsed as YAML) to a nested dict, returning a new dict."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"{source} {item!r}: expected KEY=VALUE, e.g. --set train.steps=500")
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"{source} {item!r}: empty key; expected e.g. --set train.steps=500")
        node = data
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            elif not isinstance(node[p], dict):
                raise ConfigError(f"{source} {item!r}: '{p}' is a value, not a section")
            node = node[p]
        node[parts[-1]] = _parse_override_value(raw)
    return data


def load_config(path: str | os.PathLike, overrides: Optional[list[str]] = None) -> Config:
    """Load a YAML config file (safe loader), apply ``--set`` overrides and validate.

    Args:
        path: YAML file.
        overrides: ``["train.steps=500", "method.name=mic"]``.

    Raises:
        ConfigError: missing file, invalid YAML, unknown key, wrong type or out-of-range value.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; check the path (shipped examples are in configs/)")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; pass a YAML config file such as configs/demo.yaml")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not a text (YAML) file") from None
    data = apply_overrides(data, overrides or [])
    src = str(path) + (" (with --set overrides)" if overrides else "")
    return config_from_dict(data, src)
