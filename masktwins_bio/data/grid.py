"""The training grid: the voxel size (nm) both domains are resampled to when a run does not set one.

Source and target rarely share a voxel size, and the grid decides two things at once: how much of the tissue one
training patch sees (its *context*) and how finely it sees it. On the two real directions of the adaptation study
(BENCHMARKS.md, "Training grid") widening the in-plane context of the CPU preset's 96-pixel patches from 0.77 um
(8 nm pixels) to 1.15 um (12 nm) lifted FAFB -> VNC III by about 6 IoU for every method: with too little context the
network cannot tell a mitochondrion from any other dark profile (glial processes, thick membranes) of a new tissue.

The rule, per axis group:

* in-plane: the coarser of the two domains' in-plane pixels (finer detail exists in only one domain), coarsened
  further until a patch spans :data:`MIN_CONTEXT_NM` of tissue, but by at most :data:`MAX_COARSENING` (small
  patches must not cost the segmentation its resolution);
* z: the thinner of the two domains' sections when they are comparable (within :data:`SECTION_RATIO`: no domain is
  thinned out), but the thicker when one domain is cut much thinner than the other - serial-section TEM (40-50 nm
  sections) against isotropic FIB-SEM (5 nm): re-slicing 50 nm sections into 5 nm ones would invent the data between
  them, while averaging 5 nm slices into 50 nm slabs is what a TEM section is (a projection through its thickness);
  never finer than the in-plane pixel (isotropic data stays isotropic when coarsened).

A run that sets ``data.voxel_size`` (or fine-tunes a model, which keeps its own grid) is never changed.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["MIN_CONTEXT_NM", "MAX_COARSENING", "SECTION_RATIO", "training_voxel_size"]

#: in-plane tissue (nm) one training patch should span: 96 pixels of 12 nm
MIN_CONTEXT_NM = 1152.0
#: the context rule coarsens the coarser domain's in-plane pixel by at most this factor (8 nm -> 12 nm)
MAX_COARSENING = 1.5
#: section thicknesses within this ratio count as comparable (the thinner is kept), beyond it the thicker is used
SECTION_RATIO = 1.5


def training_voxel_size(source: Sequence[float], target: Sequence[float], patch_size: Sequence[int],
                        min_context_nm: float = MIN_CONTEXT_NM, max_coarsening: float = MAX_COARSENING
                        ) -> tuple[float, float, float]:
    """The default training voxel size (nm, z y x) for a source/target pair and a patch size.

    Args:
        source: Source voxel size (nm, z, y, x).
        target: Target voxel size (nm, z, y, x).
        patch_size: Training patch size in voxels (z, y, x); its in-plane side sets the minimum pixel.
        min_context_nm: In-plane tissue a patch should span.
        max_coarsening: Largest factor by which the context rule coarsens the coarser domain's pixel.

    Returns:
        ``(z, yx, yx)``, e.g. ``(40, 12, 12)`` for VNC III (50 x 4.6 x 4.6) and FAFB (40 x 8 x 8) with 96-pixel
        patches.

    Example:
        >>> training_voxel_size((50, 4.6, 4.6), (40, 8, 8), (8, 96, 96))
        (40.0, 12.0, 12.0)
        >>> training_voxel_size((50, 4.6, 4.6), (5, 5, 5), (16, 96, 96))  # ssTEM -> FIB-SEM: the TEM sections
        (50.0, 7.5, 7.5)
        >>> training_voxel_size((8, 8, 8), (8, 8, 8), (32, 256, 256))
        (8.0, 8.0, 8.0)
    """
    if len(source) != 3 or len(target) != 3 or len(patch_size) != 3:
        raise ValueError("voxel sizes and the patch size need three values (z, y, x)")
    if min(*source, *target) <= 0 or min(patch_size) <= 0:
        raise ValueError(f"voxel sizes and patch sizes must be positive, got {source}, {target}, {patch_size}")
    native = max(min(source[1:]), min(target[1:]))
    yx = max(native, min(min_context_nm / min(patch_size[1:]), max_coarsening * native))
    thin, thick = sorted((float(source[0]), float(target[0])))
    z = max(thin if thick <= SECTION_RATIO * thin else thick, yx)
    return (round(float(z), 4), round(float(yx), 4), round(float(yx), 4))
