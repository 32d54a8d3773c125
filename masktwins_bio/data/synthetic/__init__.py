"""Synthetic EM-like domains: a labelled source volume and a shifted target volume, without downloads.

The generator works in two steps so that one piece of "tissue" can be imaged by different "microscopes":

1. :func:`make_scene` draws the tissue in **world units** (nm, z, y, x): Voronoi-like cells with wavy
   membranes, mitochondria (bent capsules with a radius, a cristae period and a cristae layout; some pairs
   touching), small vesicles and dark distractor blobs (dense-core vesicles, lipid droplets). Nothing here
   depends on a voxel grid.
2. :func:`render_scene` images a scene with a :class:`DomainStyle` on that style's voxel grid: it evaluates
   the geometry at voxel centres (per-object bounding boxes, a k-d tree for cells, never Python loops over
   voxels), adds cytoplasm texture at the style's grain, blurs (PSF, in nm), applies brightness, contrast and
   gamma and adds Gaussian and shot noise. Labels are the exact geometry (uint32 instances, 1..N).

A domain pair (:func:`make_domain_pair`) is two *different* pieces of tissue of the same world extent, the
source rendered with :data:`SOURCE_STYLE` (ssTEM-like, 40x8x8 nm, crisp, high-contrast cristae) and the target
with ``SOURCE_STYLE.interpolate(TARGET_STYLE, shift)`` (FIB-SEM-like 25x10x10 nm, low contrast, gamma, noise,
blur, coarser texture, faint cristae, many more dark distractors). ``shift=0`` gives a target in the source
style, ``shift=1`` the target preset, ``shift>1`` an exaggerated gap. Per-volume z-scoring removes
brightness/contrast differences but not the texture, blur, noise, cristae and distractor differences, so a
source-only model degrades on the target while membranes and shapes stay recognisable.

Everything is deterministic by seed (numpy ``Generator`` from a ``SeedSequence`` only).
:func:`sample_data` writes the pair as OME-Zarr (``masktwins-bio sample-data DIR``).

The package follows these stages, one module each: :mod:`.style` (how a microscope images), :mod:`.scene` (what
tissue is there, in nm), :mod:`.render` (the image and labels on a voxel grid) and :mod:`.pairs` (domain pairs and the
sample data on disk).
"""

from .pairs import SIZES, make_domain_pair, sample_data
from .render import generate_volume, render_scene
from .scene import Mitochondrion, Scene, make_scene
from .style import SOURCE_STYLE, TARGET_STYLE, DomainStyle, style_for_shift

__all__ = [
    "DomainStyle",
    "SOURCE_STYLE",
    "TARGET_STYLE",
    "SIZES",
    "style_for_shift",
    "Mitochondrion",
    "Scene",
    "make_scene",
    "render_scene",
    "generate_volume",
    "make_domain_pair",
    "sample_data",
]
