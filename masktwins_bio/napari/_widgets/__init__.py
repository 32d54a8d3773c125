"""The plugin's dock widgets: :class:`.predict.PredictWidget`, :class:`.adapt.AdaptWidget`,
:class:`.inspect.InspectWidget` (magicgui Containers taking the viewer; they need Qt, so import them lazily)."""

from __future__ import annotations
