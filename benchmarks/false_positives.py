"""Where a run's false positives are, and whether the model's own confidence could tell them apart (a diagnostic).

For one evaluated run of ``masktwins-bio benchmark`` (its ``target_eval/target_probability.zarr``, on the training
grid) and the target's ground truth, the predicted foreground (probability > 0.5) is split into 26-connected objects.
An object is a true positive when at least ``--overlap`` of its voxels are ground-truth foreground, else a false
positive. The script prints, for both kinds, the number of objects and voxels and the quantiles of the objects' mean
probability, then for a range of object-confidence thresholds the share of false-positive and true-positive voxels
an object-level guard would keep (objects whose mean probability is below the threshold dropped). A guard against
self-training on the source model's false positives works only if some threshold keeps most true-positive voxels
and few false-positive ones on *both* directions.

With ``--hidden-sections IMAGE`` the run's model (``model.pt``) also predicts every section of the target from its
neighbours alone, as a MaskTwins view does: the target on the training grid is cut into the model's patches, each
patch's sections are split into two complementary halves (whole-section masks, keep 0.5) and each half is hidden in
turn; a voxel's *hidden-section probability* is the prediction of the view that hid its section. The script then
prints the voxel-weighted mean of it over true- and false-positive objects and the quantiles of the objects' means:
how well each kind of object can be inferred from the sections around it, which is what the consistency between
complementary views rewards.

    python benchmarks/false_positives.py runs/final/fafb2vnc/base/source_only/seed0 \\
        ../shared/data/vnc3_drosophila_mito/mitochondria --labels-voxel-size 50,4.6,4.6 --label-threshold 1
    python benchmarks/false_positives.py runs/final/vnc2fafb/base/source_only/seed0 \\
        ../shared/data/fafb_mito_damitoseg/seg --labels-voxel-size 40,8,8 --label-threshold 128
    python benchmarks/false_positives.py runs/final/fafb2vnc/base/source_only/seed0 \\
        ../shared/data/vnc3_drosophila_mito/mitochondria --labels-voxel-size 50,4.6,4.6 --label-threshold 1 \\
        --hidden-sections ../shared/data/vnc3_drosophila_mito/raw --image-voxel-size 50,4.6,4.6
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import cc3d
import numpy as np

from masktwins_bio.io import open_volume
from masktwins_bio.metrics.inputs import open_prediction


def object_table(prob: np.ndarray, truth: np.ndarray, overlap: float = 0.3) -> dict:
    """Mean probability, size and kind of every predicted object.

    Args:
        prob: ``(Z, Y, X)`` foreground probability in [0, 1].
        truth: ``(Z, Y, X)`` bool ground truth on the same grid.
        overlap: Least fraction of an object's voxels in the ground truth for a true positive.

    Returns:
        ``{"mean": (N,), "size": (N,), "tp": (N,) bool, "objects": (Z * Y * X,) object id per voxel, 0 outside}``.
    """
    objects = cc3d.connected_components(prob > 0.5, connectivity=26).ravel()
    size = np.bincount(objects)[1:]
    per_object = lambda values: np.bincount(objects, weights=values.ravel())[1:] / size  # noqa: E731
    return {"mean": per_object(prob), "size": size, "tp": per_object(truth) >= overlap, "objects": objects}


def hidden_section_probability(run: Path, image: str, image_voxel_size, voxel_size, shape, seed: int = 0
                                ) -> np.ndarray:
    """Foreground probability of every voxel predicted with its own section hidden (see the module docstring).

    Args:
        run: The run folder (its ``model.pt``).
        image: The target image (any format masktwins-bio reads).
        image_voxel_size: Its voxel size (nm, z, y, x).
        voxel_size: The training grid (nm) the probability map is on.
        shape: ``(Z, Y, X)`` of that map.
        seed: Seed of the random section halves.

    Returns:
        ``(Z, Y, X)`` float32 probabilities on the training grid.
    """
    import torch

    from masktwins_bio.data.normalize import normalize, statistics_for
    from masktwins_bio.methods.masks import complementary_masks
    from masktwins_bio.models import load_model

    model = load_model(run / "model.pt")
    vol = open_volume(image).with_voxel_size(image_voxel_size)
    norm = model.metadata.get("normalization") or {}
    stats = statistics_for(vol, norm)
    data = np.asarray(vol.resampled(voxel_size, shape=shape)[:], dtype=np.float32)
    x = torch.from_numpy(np.asarray(normalize(data, stats, norm.get("mode", "zscore")), dtype=np.float32))
    patch = model.patch_size
    starts = [sorted({*range(0, n - p + 1, p), n - p}) for n, p in zip(shape, patch)]
    out = np.zeros(shape, np.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for z, y, x0 in itertools.product(*starts):
            window = np.s_[z:z + patch[0], y:y + patch[1], x0:x0 + patch[2]]
            tile = x[window][None, None]
            m, m_not = complementary_masks(tile.shape, (1, patch[1], patch[2]), 0.5, generator=generator)
            p = model.foreground_probability(model.network(torch.cat([tile * m, tile * m_not]))).float().numpy()
            out[window] = np.where(m[0, 0].numpy() > 0, p[1, 0], p[0, 0])  # the view that hid the section
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="an evaluated run folder (with target_eval/target_probability.zarr)")
    ap.add_argument("labels", help="the target's ground-truth labels (any format masktwins-bio reads)")
    ap.add_argument("--labels-voxel-size", required=True, help="z,y,x in nm")
    ap.add_argument("--label-threshold", type=float, default=1)
    ap.add_argument("--overlap", type=float, default=0.3)
    ap.add_argument("--hidden-sections", metavar="IMAGE", help="the target image: also report how well the run's "
                    "model infers each object from the neighbouring sections (module docstring)")
    ap.add_argument("--image-voxel-size", help="z,y,x in nm of --hidden-sections")
    args = ap.parse_args()
    if args.hidden_sections and not args.image_voxel_size:
        ap.error("--hidden-sections needs --image-voxel-size z,y,x (nm)")
    source = open_prediction(args.run / "target_eval" / "target_probability.zarr", pred_kind="probability")
    prob = source.probabilities(tuple(slice(0, n) for n in source.volume.shape))  # uint8 p * 255 -> [0, 1]
    labels = open_volume(args.labels, kind="labels").with_voxel_size(
        [float(v) for v in args.labels_voxel_size.split(",")])
    truth = np.asarray(labels.resampled(source.volume.voxel_size, shape=prob.shape)[:]) >= args.label_threshold
    t = object_table(prob, truth, args.overlap)
    print(f"{args.run}: {len(t['tp'])} predicted objects on {'x'.join(map(str, prob.shape))} voxels")
    for name, kind in (("true positive", t["tp"]), ("false positive", ~t["tp"])):
        q = np.quantile(t["mean"][kind], [0.1, 0.5, 0.9]) if kind.any() else [np.nan] * 3
        print(f"  {name} objects: {int(kind.sum())}, voxels {int(t['size'][kind].sum())}, mean probability "
              f"quantiles 10/50/90 %: {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}")
    print("| object threshold | false-positive voxels kept | true-positive voxels kept |\n|---|---|---|")
    fp_all, tp_all = t["size"][~t["tp"]].sum(), t["size"][t["tp"]].sum()
    for thr in (0.7, 0.75, 0.8, 0.85, 0.9):
        keep = t["mean"] >= thr
        print(f"| {thr:.2f} | {t['size'][keep & ~t['tp']].sum() / max(fp_all, 1):.2f} | "
              f"{t['size'][keep & t['tp']].sum() / max(tp_all, 1):.2f} |")
    if args.hidden_sections:
        hidden = hidden_section_probability(args.run, args.hidden_sections,
                                            [float(v) for v in args.image_voxel_size.split(",")],
                                            source.volume.voxel_size, prob.shape)
        per_object = np.bincount(t["objects"], weights=hidden.ravel())[1:] / t["size"]
        print("hidden-section probability (each voxel predicted from the neighbouring sections only):")
        for name, kind in (("true positive", t["tp"]), ("false positive", ~t["tp"])):
            if not kind.any():
                continue
            mean = (per_object[kind] * t["size"][kind]).sum() / t["size"][kind].sum()
            q = np.quantile(per_object[kind], [0.1, 0.5, 0.9])
            print(f"  {name} objects: voxel mean {mean:.2f} (probability on the clean target "
                  f"{(t['mean'][kind] * t['size'][kind]).sum() / t['size'][kind].sum():.2f}), object means "
                  f"10/50/90 %: {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
