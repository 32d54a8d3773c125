"""The names of the adaptation methods and networks, and where each one lives: one list each.

A :class:`Registry` maps a name to the object that implements it. The built-in entries are written here as
``"module:attribute"`` strings, so the config (which must not import torch) validates ``method.name`` and
``model.name`` against the same list that :func:`masktwins_bio.methods.build_method` and
:func:`masktwins_bio.models.build_network` build from; the object is imported on first use. New entries (a variant
in a notebook, a plugin) are added with :meth:`Registry.register` and are accepted by the config from then on::

    from masktwins_bio.methods import UDAMethod, register

    @register
    class MyVariant(UDAMethod):
        name = "my_variant"
        ...

Adding a built-in method or network is one class plus one line in the tables below.
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterator, Mapping, Optional, Union

from .errors import ConfigError

__all__ = ["Registry", "METHODS", "NETWORKS"]


class Registry:
    """Names -> implementations, the built-in ones imported lazily.

    Args:
        key: The config key that selects an entry (``method.name``), used in error messages.
        builtin: Built-in entries, name -> ``"module:attribute"``.
    """

    def __init__(self, key: str, builtin: Mapping[str, str]):
        self.key = key
        self._entries: dict[str, Union[str, object]] = dict(builtin)

    def names(self) -> tuple[str, ...]:
        """The registered names, built-in ones first, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str):
        if name not in self._entries:
            raise ConfigError(self.unknown(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            module, attr = entry.split(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def unknown(self, name: object) -> str:
        """The one-line message for a name that is not registered."""
        return f"{self.key} {name!r} is unknown; choose one of {', '.join(self._entries)}"

    def check(self, name: str) -> str:
        """``name`` if registered (a pydantic validator: raises ``ValueError`` otherwise; the config loader prefixes
        the key and appends the value given)."""
        if name not in self._entries:
            *first, last = (repr(n) for n in self._entries)
            raise ValueError(f"expected {', '.join(first)} or {last}" if first else f"expected {last}")
        return name

    def register(self, obj: Optional[object] = None, *, name: Optional[str] = None) -> Callable:
        """Register ``obj`` under ``name`` (default: ``obj.name``); usable as a decorator, with or without arguments.

        A built-in entry may be registered again by the object it names (the decorators on the built-in classes do
        this); any other name clash is refused, so two variants can never silently share a name.
        """

        def add(o):
            n = name or getattr(o, "name", None)
            if not isinstance(n, str) or not n:
                raise ConfigError(f"{self.key}: {o!r} has no name; give it a 'name' attribute or pass name=...")
            old = self._entries.get(n)
            path = f"{getattr(o, '__module__', '')}:{getattr(o, '__qualname__', '')}"
            if old is not None and old is not o and old != path:
                raise ConfigError(f"{self.key} {n!r} is already registered ({old!r}); choose another name")
            self._entries[n] = o
            return o

        return add if obj is None else add(obj)


#: ``method.name`` -> :class:`masktwins_bio.methods.UDAMethod` subclass (the ladder, in its order)
METHODS = Registry("method.name", {
    "source_only": "masktwins_bio.methods.variants:SourceOnly",
    "mean_teacher": "masktwins_bio.methods.variants:MeanTeacher",
    "mic": "masktwins_bio.methods.variants:MIC",
    "masktwins_random_pair": "masktwins_bio.methods.variants:MaskTwinsRandomPair",
    "masktwins": "masktwins_bio.methods.variants:MaskTwins",
})

#: ``model.name`` -> network spec (``build(model_cfg, strides, out_channels, norm)`` and ``divisor(...)``) in
#: :mod:`masktwins_bio.models`
NETWORKS = Registry("model.name", {
    "unet": "masktwins_bio.models:UNetSpec",
    "basic_unet": "masktwins_bio.models:BasicUNetSpec",
    "dynunet": "masktwins_bio.models:DynUNetSpec",
    "segresnet": "masktwins_bio.models:SegResNetSpec",
})
