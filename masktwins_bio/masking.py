"""Deprecated alias of :mod:`masktwins_bio.methods.masks` (the masks now live with the rest of the method).

``from masktwins_bio.masking import complementary_masks`` keeps working and warns; import from
``masktwins_bio.methods.masks`` instead. This alias will be removed in a later release.
"""

from __future__ import annotations

import warnings

from .methods.masks import *  # noqa: F401,F403
from .methods.masks import __all__  # noqa: F401

warnings.warn("masktwins_bio.masking moved to masktwins_bio.methods.masks; import from there (this alias will be "
              "removed in a later release)", DeprecationWarning, stacklevel=2)
