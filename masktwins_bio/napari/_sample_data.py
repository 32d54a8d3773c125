"""napari sample data: the synthetic source/target domain pair of :func:`masktwins_bio.data.synthetic.make_domain_pair`.

Four layers: the labelled *source* image and its mitochondria labels, the unlabelled *target* image (another
"microscope": voxel size, contrast, noise, texture) and the target ground truth (for evaluation only; hidden at
first). Each layer's ``scale`` is its voxel size in nm, so source and target cover the same physical extent; the
target is placed beside the source (along x) so both can be seen at once. Generated in memory (no download) and
cached per size.
"""

from __future__ import annotations

import functools

from ..data.synthetic import make_domain_pair
from ._layers import AXIS_LABELS, NM_UNITS

__all__ = ["synthetic_pair", "synthetic_pair_demo", "sample_layers"]


@functools.lru_cache(maxsize=2)
def _pair(size: str, seed: int) -> dict:
    return make_domain_pair(size, seed=seed)


def sample_layers(size: str = "small", seed: int = 0) -> list[tuple]:
    """Layer data tuples ``(data, kwargs, layer_type)`` of the synthetic pair.

    Args:
        size: Preset of :data:`masktwins_bio.data.synthetic.SIZES` (``tiny``, ``small``, ``demo``).
        seed: Random seed of the scenes.
    """
    d = _pair(size, seed)
    svs = tuple(float(v) for v in d["source_voxel_size"])
    tvs = tuple(float(v) for v in d["target_voxel_size"])
    width_nm = d["source_image"].shape[2] * svs[2]
    shift = (0.0, 0.0, round(1.1 * width_nm, 3))  # target beside the source, 10 % gap

    def layer(key: str, name: str, kind: str, scale, **kwargs) -> tuple:
        meta = {"masktwins_bio": {"sample": f"synthetic {size}, seed {seed}", "role": name}}
        # a copy: napari edits label layers in place, and the cached pair must stay intact
        return (d[key].copy(), {"name": name, "scale": scale, "units": NM_UNITS, "axis_labels": AXIS_LABELS,
                                "metadata": meta, **kwargs}, kind)

    return [
        layer("source_image", "source image", "image", svs, contrast_limits=(0, 255)),
        layer("source_labels", "source labels", "labels", svs, opacity=0.4),
        layer("target_image", "target image", "image", tvs, translate=shift, contrast_limits=(0, 255)),
        layer("target_labels", "target ground truth", "labels", tvs, translate=shift, opacity=0.4, visible=False),
    ]


def synthetic_pair() -> list[tuple]:
    """Sample data: synthetic source/target pair, ``small`` preset (16 x 128 x 128 source voxels)."""
    return sample_layers("small")


def synthetic_pair_demo() -> list[tuple]:
    """Sample data: synthetic source/target pair, ``demo`` preset (32 x 192 x 192 source voxels)."""
    return sample_layers("demo")
