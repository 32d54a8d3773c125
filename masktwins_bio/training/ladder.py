"""Deprecated alias of :mod:`masktwins_bio.experiments.ladder` (orchestration moved above ``training``).

Import from ``masktwins_bio.experiments`` instead; this alias will be removed in a later release.
"""

from __future__ import annotations

import warnings

from ..experiments.ladder import *  # noqa: F401,F403
from ..experiments.ladder import __all__  # noqa: F401

warnings.warn("masktwins_bio.training.ladder moved to masktwins_bio.experiments.ladder; import from there (this alias "
              "will be removed in a later release)", DeprecationWarning, stacklevel=2)
