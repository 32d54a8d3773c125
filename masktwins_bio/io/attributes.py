"""Reading the attributes of a Zarr group: its OME-NGFF metadata and masktwins-bio's provenance (one place each).

OME-Zarr 0.4 keeps ``multiscales``, ``image-label`` ... at the top level of the attributes; 0.5 nests them under
``ome``. masktwins-bio's own provenance (task, settings, completion, source) lives under :data:`PROVENANCE_KEY`.
This module imports nothing else of the package, so every reader, writer and guard can use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROVENANCE_KEY", "ome_attributes", "provenance"]

#: the attribute key of masktwins-bio's provenance in every store it writes
PROVENANCE_KEY = "masktwins_bio"


def _mapping(attrs: Any) -> dict:
    return dict(attrs) if hasattr(attrs, "keys") else {}


def ome_attributes(attrs: Any) -> dict:
    """The OME-NGFF metadata of ``attrs`` (0.5: under ``ome``; 0.4: the top level); ``{}`` for no attributes."""
    attrs = _mapping(attrs)
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else attrs


def provenance(attrs: Any) -> dict:
    """masktwins-bio's provenance in ``attrs``; ``{}`` when the store was not written by masktwins-bio."""
    prov = _mapping(attrs).get(PROVENANCE_KEY)
    return prov if isinstance(prov, dict) else {}
