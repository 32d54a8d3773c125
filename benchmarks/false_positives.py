"""Where a run's false positives are, and whether the model's own confidence could tell them apart (a diagnostic).

For one evaluated run of ``masktwins-bio benchmark`` (its ``target_eval/target_probability.zarr``, on the training
grid) and the target's ground truth, the predicted foreground (probability > 0.5) is split into 26-connected objects.
An object is a true positive when at least ``--overlap`` of its voxels are ground-truth foreground, else a false
positive. The script prints, for both kinds, the number of objects and voxels and the quantiles of the objects' mean
probability, then for a range of object-confidence thresholds the share of false-positive and true-positive voxels
an object-level guard would keep (objects whose mean probability is below the threshold dropped). A guard against
self-training on the source model's false positives works only if some threshold keeps most true-positive voxels
and few false-positive ones on *both* directions.

    python benchmarks/false_positives.py runs/final/fafb2vnc/base/source_only/seed0 \\
        ../shared/data/vnc3_drosophila_mito/mitochondria --labels-voxel-size 50,4.6,4.6 --label-threshold 1
    python benchmarks/false_positives.py runs/final/vnc2fafb/base/source_only/seed0 \\
        ../shared/data/fafb_mito_damitoseg/seg --labels-voxel-size 40,8,8 --label-threshold 128
"""

from __future__ import annotations

import argparse
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
        ``{"mean": (N,), "size": (N,), "tp": (N,) bool}``.
    """
    objects = cc3d.connected_components(prob > 0.5, connectivity=26).ravel()
    size = np.bincount(objects)[1:]
    per_object = lambda values: np.bincount(objects, weights=values.ravel())[1:] / size  # noqa: E731
    return {"mean": per_object(prob), "size": size, "tp": per_object(truth) >= overlap}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="an evaluated run folder (with target_eval/target_probability.zarr)")
    ap.add_argument("labels", help="the target's ground-truth labels (any format masktwins-bio reads)")
    ap.add_argument("--labels-voxel-size", required=True, help="z,y,x in nm")
    ap.add_argument("--label-threshold", type=float, default=1)
    ap.add_argument("--overlap", type=float, default=0.3)
    args = ap.parse_args()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
