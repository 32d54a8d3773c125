"""Experiments: what orchestrates training, inference, post-processing and metrics into one comparison.

- :func:`compare` (``ladder.py``): the method ladder - every method x seed trained from one config, with a shared
  two-stage source-only prefix, then predicted, segmented and evaluated on the target;
- :func:`build_experiment` (``harness.py``): the config of a ``masktwins-bio benchmark`` run from volumes and a
  budget preset (``PRESETS``);
- :func:`run_demo` (``demo.py``): the built-in synthetic demo.

This package sits above ``training`` (docs/architecture.md), so ``training`` imports only what it trains with.
"""

from .demo import DEMO_STEPS, demo_config, demo_figure, run_demo
from .harness import PRESETS, build_experiment, summarize_shapes
from .ladder import compare, format_comparison

__all__ = ["compare", "format_comparison", "build_experiment", "summarize_shapes", "PRESETS", "run_demo",
           "demo_config", "demo_figure", "DEMO_STEPS"]
