"""Deprecated alias of :mod:`masktwins_bio.experiments.harness` (orchestration moved above ``training``).

Import from ``masktwins_bio.experiments`` instead; this alias will be removed in a later release.
"""

from __future__ import annotations

import warnings

from ..experiments.harness import *  # noqa: F401,F403
from ..experiments.harness import __all__  # noqa: F401

warnings.warn("masktwins_bio.training.harness moved to masktwins_bio.experiments.harness; import from there (this alias "
              "will be removed in a later release)", DeprecationWarning, stacklevel=2)
