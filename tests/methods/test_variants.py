"""The method step of every registered variant (issue 13, item 4).

Parameterized over the registry (:data:`masktwins_bio.methods.METHODS`): registering a variant adds it to every test
here, and the tables below must then say what it feeds the student and what its loss is - a variant without an entry
fails :func:`test_every_registered_method_is_specified`. The losses are assembled by hand from the pieces (source loss,
pseudo-label loss, MSE, lambdas, ramp), so a swapped lambda, a wrong batch split or a missing ramp fails.
"""

from __future__ import annotations

import pytest
import torch

from masktwins_bio.config import AugmentConfig, MethodConfig
from masktwins_bio.methods import METHODS, build_method
from masktwins_bio.methods.losses import consistency_mse

NAMES = sorted(METHODS)
LT, LCM, RAMP_STEPS, ADAPT = 0.7, 0.3, 8, 3

#: student views of the target patch per method (None: never touches the target)
VIEWS = {"source_only": None, "mean_teacher": 1, "mic": 1, "masktwins_random_pair": 2, "masktwins": 2}
#: whether the views' masks are exactly complementary (sum to 1 everywhere)
COMPLEMENTARY = {"masktwins": True, "masktwins_random_pair": False}


def _mean_pseudo(m, views, labels, weight):
    return LT * sum(m.pseudo_loss(v, labels, weight) for v in views) / len(views)


#: the target terms by hand, from the student's view logits
TERMS = {
    "source_only": lambda m, v, lab, w: {},
    "mean_teacher": lambda m, v, lab, w: {"pseudo": LT * m.pseudo_loss(v[0], lab, w)},
    "mic": lambda m, v, lab, w: {"pseudo": LT * m.pseudo_loss(v[0], lab, w)},
    "masktwins_random_pair": lambda m, v, lab, w: {"pseudo": _mean_pseudo(m, v, lab, w),
                                                   "consistency": LCM * consistency_mse(v[0], v[1])},
    "masktwins": lambda m, v, lab, w: {"pseudo": _mean_pseudo(m, v, lab, w),
                                       "consistency": LCM * consistency_mse(v[0], v[1])},
}


class _Net(torch.nn.Module):
    """A deterministic 'network' whose logits depend on the input voxel; records every input batch."""

    def __init__(self, scale: float = 3.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(scale))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        fg = torch.tanh(x) * self.w + 0.1 * x**2
        return torch.cat([-fg / 2, fg / 2], 1)


class _NoTarget(dict):
    """A batch whose target patch may not be read."""

    def __getitem__(self, key):
        if key == "target_image":
            raise AssertionError("source_only read the target")
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def _batch(kind=dict):
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(2, 1, 4, 16, 16, generator=g)
    return kind(source_image=xs, source_label=(xs > 0.3).float(),
                target_image=torch.randn(2, 1, 4, 16, 16, generator=g) * 2)


def _method(name, **kw):
    kw.setdefault("source_mask_prob", 0.0)  # clean source patches: the loss is assembled by hand below
    cfg = MethodConfig(name=name, mask_block=(1, 4, 4), strong_augment=False, lambda_target=LT, lambda_cm=LCM,
                       target_rampup_steps=RAMP_STEPS, adapt_from_step=ADAPT, **kw)
    return build_method(cfg, "softmax", AugmentConfig(), (4, 16, 16), source_foreground=0.1)


def test_every_registered_method_is_specified():
    assert set(NAMES) == set(VIEWS) == set(TERMS), "a registered method needs its rows in VIEWS and TERMS"
    assert set(COMPLEMENTARY) == {n for n in NAMES if hasattr(METHODS[n], "masks")}


@pytest.mark.parametrize("name", NAMES)
def test_the_loss_is_the_hand_assembled_sum(name):
    method = _method(name)
    step = ADAPT + 3  # ramp (3 + 1) / 8 = 0.5
    student, teacher = _Net(), _Net(scale=5.0)
    batch = _batch(_NoTarget if VIEWS[name] is None else dict)
    loss, logs = method.losses(student, teacher, batch, step, torch.Generator().manual_seed(0))
    x = student.inputs[-1]
    n_views = VIEWS[name] or 0
    assert len(student.inputs) == 1 and x.shape[0] == 2 + 2 * n_views  # one batched forward: source, then views
    assert torch.equal(x[:2], batch["source_image"])
    with torch.no_grad():
        logits = student(x)
    expected = method.source_loss(logits[:2], batch["source_label"])
    if n_views:
        from masktwins_bio.methods.losses import pseudo_labels

        labels, weight, _ = pseudo_labels(teacher(batch["target_image"]), "softmax", method.cfg.confidence_threshold)
        views = list(logits[2:].split(2))
        terms = TERMS[name](method, views, labels, weight)
        ramp = (step - ADAPT + 1) / RAMP_STEPS
        assert method.ramp(step) == pytest.approx(ramp) == pytest.approx(0.5)
        expected = expected + ramp * sum(terms.values())
        for key, value in terms.items():
            assert float(logs[f"loss_{key}"]) == pytest.approx(float(value), rel=1e-5), key
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    loss.backward()
    assert student.w.grad is not None and torch.isfinite(student.w.grad)


@pytest.mark.parametrize("name", NAMES)
def test_before_adapt_from_step_every_method_is_source_only(name):
    method = _method(name)
    student = _Net()
    loss, logs = method.losses(student, _Net(), _batch(_NoTarget), ADAPT - 1, torch.Generator().manual_seed(0))
    assert set(logs) == {"loss", "loss_source"} and student.inputs[-1].shape[0] == 2
    reference = _method("source_only").losses(_Net(), _Net(), _batch(), ADAPT - 1, torch.Generator().manual_seed(0))
    assert float(loss.detach()) == pytest.approx(float(reference[0].detach()))


@pytest.mark.parametrize("name", [n for n in NAMES if VIEWS[n]])
def test_the_views_come_from_one_augmented_patch(name):
    """Every view is the same target patch, masked or not (masked voxels are 0, the normalised mean)."""
    method = _method(name)
    target = _batch()["target_image"]
    views = method.make_views(target, torch.Generator().manual_seed(1))
    assert len(views) == VIEWS[name]
    for v in views:
        kept = v != 0
        assert torch.equal(v[kept], target[kept])


@pytest.mark.parametrize("name", sorted(COMPLEMENTARY))
@pytest.mark.parametrize("keep", [0.3, 0.5])
def test_masks_are_complementary_exactly_when_they_should_be(name, keep):
    method = _method(name, keep_ratio=keep)
    target = _batch()["target_image"]
    m1, m2 = method.masks(target, torch.Generator().manual_seed(2))
    assert float(m1.mean()) == pytest.approx(keep, abs=0.2)
    if COMPLEMENTARY[name]:
        assert torch.equal(m1 + m2, torch.ones_like(m1))  # M and 1 - M
    else:
        assert not torch.equal(m1 + m2, torch.ones_like(m1))
        assert float(m2.mean()) == pytest.approx(1 - keep, abs=0.2)


#: (method, patch, voxel size nm, mask_block, keep_ratio set) -> the keep ratio the method uses
KEEP_CASES = [
    ("masktwins", (8, 96, 96), (40, 12, 12), None, None, 0.3),  # whole sections by default: uneven views
    ("masktwins_random_pair", (8, 96, 96), (40, 12, 12), None, None, 0.3),  # its matched control
    ("masktwins", (8, 96, 96), (40, 12, 12), (1, 96, 96), None, 0.3),  # whole sections, given explicitly
    ("masktwins", (8, 96, 96), (40, 12, 12), (1, 12, 12), None, 0.5),  # in-plane blocks: the paper's 0.5
    ("masktwins", (16, 64, 64), (8, 8, 8), None, None, 0.5),  # isotropic voxels: cubic blocks
    ("masktwins", (8, 96, 96), (40, 12, 12), None, 0.5, 0.5),  # the config wins
    ("mic", (8, 96, 96), (40, 12, 12), None, None, 0.3),
    ("mic", (16, 64, 64), (8, 8, 8), None, None, 0.3),
]


@pytest.mark.parametrize("name, patch, voxel, block, keep, expected", KEEP_CASES)
def test_default_keep_ratio_follows_the_mask_geometry(name, patch, voxel, block, keep, expected):
    method = build_method(MethodConfig(name=name, mask_block=block, keep_ratio=keep), "softmax", AugmentConfig(),
                          patch, voxel)
    assert method.keep_ratio == expected


@pytest.mark.parametrize("name, prob, expected", [
    ("masktwins", None, 0.5), ("masktwins_random_pair", None, 0.5),  # the control matches its method
    ("masktwins", 0.0, 0.0), ("masktwins", 1.0, 1.0),  # the config wins
    ("source_only", None, 0.0), ("mean_teacher", None, 0.0), ("mic", None, 0.0),
])
def test_default_source_mask_prob_is_per_method(name, prob, expected):
    method = build_method(MethodConfig(name=name, source_mask_prob=prob), "softmax", AugmentConfig(), (8, 96, 96),
                          (40, 12, 12))
    assert method.source_mask_prob == expected
