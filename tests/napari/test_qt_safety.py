"""The default (CUDA) torch wheel bundles triton; importing it after napari's OpenGL is up segfaults (Mesa llvmpipe).

These tests check the guard itself in fresh interpreters, whichever torch build is installed: with Qt loaded, the
plugin makes ``import triton`` fail cleanly and an optimiser can still be built and stepped; without Qt, or with
triton already imported (safe, before OpenGL), nothing is blocked. With the CUDA wheel, `.ci/run` also runs the
whole napari suite, which is where the segfault used to happen (the Adapt widget builds AdamW).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("qtpy")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_with_qt_loaded_the_plugin_blocks_triton_and_training_still_works():
    r = run("""
        import importlib.util, sys
        import qtpy.QtCore  # a Qt binding is loaded, as in napari
        import masktwins_bio.napari  # the plugin package, as npe2 imports it
        import torch
        try:
            import triton
        except ImportError:
            print("blocked")
        net = torch.nn.Conv3d(1, 2, 3)
        opt = torch.optim.AdamW(net.parameters())  # imports torch._dynamo (-> triton on CUDA wheels)
        net(torch.randn(1, 1, 6, 6, 6)).sum().backward()
        opt.step()
        import torch._dynamo
        from torch.utils._triton import has_triton
        print("has_triton", has_triton(), "find_spec", importlib.util.find_spec("triton"))
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "blocked" in r.stdout
    assert "has_triton False find_spec None" in r.stdout


def test_without_qt_or_with_triton_first_nothing_is_blocked():
    r = run("""
        import sys
        from masktwins_bio.napari._qt_safety import keep_triton_out
        print("no-qt", keep_triton_out(), "triton" in sys.modules)
        sys.modules["triton"] = type(sys)("triton")  # imported before Qt: safe, leave it
        import qtpy.QtCore
        print("triton-first", keep_triton_out(), sys.modules["triton"] is not None)
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no-qt False False" in r.stdout
    assert "triton-first False True" in r.stdout
