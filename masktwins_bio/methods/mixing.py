"""Cross-domain mixing: source voxels pasted onto the target, with their labels (the reference code's DACS branch).

DACS's ClassMix pastes half of the classes present in the source label; with two classes (background,
mitochondria) that is either the whole source foreground or the whole background, so for EM we paste either

* ``box``: one random in-plane box through all sections (CutMix-style; each side 30-70 % of the patch), or
* ``objects``: the source mitochondria with a thin ring of their surrounding background (dilated in-plane by
  ``ring`` voxels), so pasted objects keep their own boundary context.

The mixed view takes the source label and weight 1 where source voxels were pasted and the teacher's pseudo-label
and weight elsewhere; it is one more student input of the batched forward. Everything runs on the batch's device.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["MIX_MODES", "box_paste_mask", "object_paste_mask", "mix_source_into_target"]

MIX_MODES = ("none", "box", "objects")


def box_paste_mask(shape, generator: Optional[torch.Generator] = None, device=None, dtype=torch.float32,
                   side: tuple[float, float] = (0.3, 0.7)) -> torch.Tensor:
    """``(B, 1, Z, Y, X)`` masks of one random in-plane box per sample, spanning all sections.

    Args:
        shape: ``(B, C, Z, Y, X)`` of the batch.
        side: Range of the box side as a fraction of the patch side (y and x drawn independently).
    """
    b, z, y, x = int(shape[0]), *(int(s) for s in shape[-3:])
    device = device if device is not None else (generator.device if generator is not None else "cpu")
    u = torch.rand((b, 4), generator=generator, device=device)
    hy = (side[0] + (side[1] - side[0]) * u[:, 0]) * y
    hx = (side[0] + (side[1] - side[0]) * u[:, 1]) * x
    y0 = (u[:, 2] * (y - hy)).floor()
    x0 = (u[:, 3] * (x - hx)).floor()
    yy = torch.arange(y, device=device).view(1, -1)
    xx = torch.arange(x, device=device).view(1, -1)
    in_y = (yy >= y0[:, None]) & (yy < (y0 + hy.round())[:, None])
    in_x = (xx >= x0[:, None]) & (xx < (x0 + hx.round())[:, None])
    plane = in_y[:, :, None] & in_x[:, None, :]
    return plane[:, None, None].expand(b, 1, z, y, x).to(dtype)


def object_paste_mask(labels: torch.Tensor, ring: int = 2) -> torch.Tensor:
    """The source foreground dilated in-plane by ``ring`` voxels: ``(B, 1, Z, Y, X)`` 0/1 of ``labels``' dtype."""
    fg = (labels > 0.5).to(torch.float32)
    if ring > 0:
        k = 2 * ring + 1
        fg = F.max_pool3d(fg, kernel_size=(1, k, k), stride=1, padding=(0, ring, ring))
    return fg.to(labels.dtype)


def mix_source_into_target(source: torch.Tensor, source_labels: torch.Tensor, target: torch.Tensor,
                           pseudo: torch.Tensor, weight: torch.Tensor, mode: str,
                           generator: Optional[torch.Generator] = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste source voxels onto target patches.

    Args:
        source: ``(Bs, 1, Z, Y, X)`` normalised (augmented) source patches.
        source_labels: ``(Bs, 1, Z, Y, X)`` 0/1 source labels.
        target: ``(B, 1, Z, Y, X)`` normalised (augmented) target patches; sample ``i`` receives source
            ``i mod Bs``.
        pseudo: ``(B, Z, Y, X)`` int64 pseudo-labels of the target.
        weight: Pseudo-label weight, a 0-dim tensor or ``(B, Z, Y, X)``.
        mode: ``box`` or ``objects``.

    Returns:
        ``(mixed (B, 1, Z, Y, X), labels (B, Z, Y, X) int64, weight (B, Z, Y, X))``: pasted voxels carry the
        source label with weight 1.
    """
    if mode not in MIX_MODES[1:]:
        raise ValueError(f"mix mode must be one of {MIX_MODES[1:]}, got {mode!r}")
    b = target.shape[0]
    idx = torch.arange(b, device=target.device) % source.shape[0]
    src, src_lab = source[idx].to(target.dtype), source_labels[idx]
    if mode == "box":
        paste = box_paste_mask(target.shape, generator, target.device, target.dtype)
    else:
        paste = object_paste_mask(src_lab).to(target.dtype)
    mixed = paste * src + (1 - paste) * target
    p = paste[:, 0] > 0.5
    labels = torch.where(p, (src_lab[:, 0] > 0.5).long(), pseudo)
    w = weight.expand_as(pseudo) if weight.dim() == 0 else weight
    return mixed, labels, torch.where(p, torch.ones_like(w, dtype=torch.float32), w.float())
