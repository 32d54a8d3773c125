"""Deprecated alias of :mod:`masktwins_bio.experiments.demo` (the demo is orchestration, like the ladder).

Import from ``masktwins_bio.experiments`` instead; this alias will be removed in a later release.
"""

from __future__ import annotations

import warnings

from .experiments.demo import *  # noqa: F401,F403
from .experiments.demo import __all__  # noqa: F401

warnings.warn("masktwins_bio.demo moved to masktwins_bio.experiments.demo; import from there (this alias will be "
              "removed in a later release)", DeprecationWarning, stacklevel=2)
