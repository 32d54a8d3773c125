"""The adaptation recipe's options on hand-made cases: class-balanced pseudo-labels, the false-positive guard,
cross-domain mixing, K complementary views, and each variant's loss terms."""

from __future__ import annotations

import math

import pytest
import torch

from masktwins_bio.config import AugmentConfig, MethodConfig
from masktwins_bio.methods.masks import partition_masks
from masktwins_bio.methods import build_method
from masktwins_bio.methods.losses import pseudo_labels
from masktwins_bio.methods.mixing import box_paste_mask, mix_source_into_target, object_paste_mask


def logits_for(p_fg):
    lg = torch.tensor([math.log(p / (1 - p)) for p in p_fg])
    return torch.stack([torch.zeros_like(lg), lg]).view(1, 2, 1, 1, -1)


def test_class_balanced_keeps_the_most_confident_share_of_each_class():
    # foreground p: 0.99, 0.9, 0.7, 0.6 (teacher unsure of the minority class); background p: 0.01 .. 0.2
    p = [0.99, 0.9, 0.7, 0.6, 0.01, 0.02, 0.05, 0.2]
    labels, weight, frac = pseudo_labels(logits_for(p), "softmax", 0.968, "class_balanced", class_keep=0.5)
    assert labels.flatten().tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    # half of each class: foreground 0.99, 0.9 (0.7 and 0.6 ignored); background 0.01, 0.02
    assert weight.flatten().tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    # an absolute threshold would have kept one foreground voxel of four
    _, w_voxel, _ = pseudo_labels(logits_for(p), "softmax", 0.968, "voxel")
    assert w_voxel.flatten().tolist() == [1, 0, 0, 0, 1, 1, 0, 0]
    assert frac.item() == pytest.approx(3 / 8)


def test_foreground_cap_ignores_the_least_confident_foreground():
    p = [0.99, 0.9, 0.7, 0.6, 0.01, 0.02, 0.05, 0.2]
    labels, weight, _ = pseudo_labels(logits_for(p), "softmax", 0.5, "voxel", foreground_cap=0.25)
    assert labels.flatten().tolist()[:4] == [1, 1, 1, 1]  # still labelled foreground ...
    assert weight.flatten().tolist() == [1, 1, 0, 0, 1, 1, 1, 1]  # ... but only 2 of 8 voxels count
    with pytest.raises(ValueError, match="per-voxel"):
        pseudo_labels(logits_for(p), "softmax", 0.5, "scalar", foreground_cap=0.25)


def test_pasted_box_carries_the_source_label_and_weight_one():
    gen = torch.Generator().manual_seed(0)
    src = torch.full((1, 1, 2, 10, 10), 5.0)
    src_lab = torch.zeros(1, 1, 2, 10, 10)
    src_lab[..., :5] = 1
    tgt = torch.zeros(2, 1, 2, 10, 10)
    pseudo = torch.zeros(2, 2, 10, 10, dtype=torch.long)
    mixed, labels, weight = mix_source_into_target(src, src_lab, tgt, pseudo, torch.tensor(0.3), "box", gen)
    pasted = mixed[:, 0] == 5.0
    assert pasted.any() and (~pasted).any()
    assert torch.equal(pasted[:, 0], pasted[:, 1])  # one box through all sections
    assert torch.equal(labels[pasted], src_lab[0, 0].expand(2, -1, -1, -1)[pasted].long())
    assert torch.all(weight[pasted] == 1) and torch.allclose(weight[~pasted], torch.tensor(0.3))
    assert torch.all(labels[~pasted] == 0)  # the target's pseudo-label elsewhere
    frac = box_paste_mask((64, 1, 1, 100, 100), gen).mean(dim=(1, 2, 3, 4))
    assert frac.min() >= 0.3**2 - 0.02 and frac.max() <= 0.7**2 + 0.02


def test_pasted_objects_bring_a_ring_of_their_background():
    lab = torch.zeros(1, 1, 1, 9, 9)
    lab[..., 4, 4] = 1
    m = object_paste_mask(lab, ring=1)
    assert int(m.sum()) == 9 and m[0, 0, 0, 3:6, 3:6].min() == 1
    src = torch.ones(1, 1, 1, 9, 9)
    mixed, labels, weight = mix_source_into_target(src, lab, torch.zeros(1, 1, 1, 9, 9),
                                                   torch.ones(1, 1, 9, 9, dtype=torch.long),
                                                   torch.full((1, 1, 9, 9), 0.5), "objects")
    assert labels[0, 0, 4, 4] == 1 and labels[0, 0, 3, 3] == 0  # the ring is source background, label 0
    assert weight[0, 0, 3, 3] == 1 and weight[0, 0, 0, 0] == 0.5 and labels[0, 0, 0, 0] == 1


@pytest.mark.parametrize("k", [2, 3, 4])
def test_partition_masks_cover_every_voxel_exactly_once(k):
    masks = partition_masks((2, 1, 6, 16, 16), (1, 4, 4), k, torch.Generator().manual_seed(1))
    assert len(masks) == k
    assert torch.equal(sum(masks), torch.ones(2, 1, 6, 16, 16))
    assert all(0 < float(m.mean()) < 1 for m in masks)


class _Recorder(torch.nn.Module):
    """A 'network' that records its input batch and returns fixed two-class logits."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        fg = (x > 0).float() * 4 - 2 + self.w
        return torch.cat([torch.zeros_like(fg), fg], 1)


def _batch():
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(2, 1, 4, 16, 16, generator=g)
    return {"source_image": xs, "source_label": (xs > 0).float(), "target_image": torch.randn(2, 1, 4, 16, 16, generator=g)}


@pytest.mark.parametrize("name, views", [("source_only", 0), ("mean_teacher", 1), ("mic", 1),
                                         ("masktwins_random_pair", 2), ("masktwins", 2)])
def test_each_variant_feeds_its_views_and_reports_its_terms(name, views):
    method = build_method(MethodConfig(name=name, mask_block=(1, 4, 4), strong_augment=False, source_mask_prob=0),
                          "softmax", AugmentConfig(), (4, 16, 16), source_foreground=0.1)
    net, teacher = _Recorder(), _Recorder()
    batch = _batch()
    loss, logs = method.losses(net, teacher, batch, step=0, generator=torch.Generator().manual_seed(0))
    x = net.inputs[-1]
    assert x.shape[0] == 2 + 2 * views  # one batched forward: source + views
    assert torch.equal(x[:2], batch["source_image"])
    if name == "masktwins":  # the two views are exactly complementary: together they give the patch back
        torch.testing.assert_close(x[2:4] + x[4:6], batch["target_image"])
        assert {"loss_pseudo", "loss_consistency", "view_agreement"} <= set(logs)
    if name == "masktwins_random_pair":
        assert not torch.allclose(x[2:4] + x[4:6], batch["target_image"])
    if name == "mean_teacher":
        torch.testing.assert_close(x[2:4], batch["target_image"])  # no augmentation, no mask
    if name == "source_only":
        assert set(logs) == {"loss", "loss_source"}
    else:
        assert float(loss.detach()) == pytest.approx(float(sum(logs[k] for k in logs if k.startswith("loss_"))), rel=1e-5)
    loss.backward()


def test_adaptation_starts_at_adapt_from_step_and_mixing_adds_one_view():
    method = build_method(MethodConfig(name="masktwins", mask_block=(1, 4, 4), adapt_from_step=5, mix="box",
                                       strong_augment=False), "softmax", AugmentConfig(), (4, 16, 16))
    net = _Recorder()
    _, logs = method.losses(net, _Recorder(), _batch(), step=4, generator=torch.Generator().manual_seed(0))
    assert net.inputs[-1].shape[0] == 2 and set(logs) == {"loss", "loss_source"}  # still the source-only step
    _, logs = method.losses(net, _Recorder(), _batch(), step=5, generator=torch.Generator().manual_seed(0))
    assert net.inputs[-1].shape[0] == 2 + 2 * 2 + 2 and "loss_mix" in logs


def test_lambdas_scale_their_terms():
    def terms(**kw):
        m = build_method(MethodConfig(name="masktwins", mask_block=(1, 4, 4), strong_augment=False, **kw),
                         "softmax", AugmentConfig(), (4, 16, 16))
        net = _Recorder()
        net.forward = lambda x: torch.randn(x.shape[0], 2, *x.shape[2:], generator=torch.Generator().manual_seed(3))
        return m.losses(net, _Recorder(), _batch(), 0, torch.Generator().manual_seed(0))[1]

    a, b = terms(lambda_cm=0.1, lambda_target=1.0), terms(lambda_cm=0.2, lambda_target=3.0)
    assert float(b["loss_consistency"]) == pytest.approx(2 * float(a["loss_consistency"]), rel=1e-5)
    assert float(b["loss_pseudo"]) == pytest.approx(3 * float(a["loss_pseudo"]), rel=1e-5)


def test_cm_rampup_ramps_the_agreement_term_alone_from_adapt_from_step():
    def terms(step, **kw):
        m = build_method(MethodConfig(name="masktwins", mask_block=(1, 4, 4), strong_augment=False,
                                      adapt_from_step=10, **kw), "softmax", AugmentConfig(), (4, 16, 16))
        net = _Recorder()
        net.forward = lambda x: torch.randn(x.shape[0], 2, *x.shape[2:], generator=torch.Generator().manual_seed(3))
        return m.losses(net, _Recorder(), _batch(), step, torch.Generator().manual_seed(0))[1]

    full = terms(10)
    for step, share in ((10, 0.25), (11, 0.5), (13, 1.0), (50, 1.0)):  # ramp over 4 steps from step 10
        ramped = terms(step, cm_rampup_steps=4)
        assert float(ramped["loss_consistency"]) == pytest.approx(share * float(full["loss_consistency"]), rel=1e-5)
        assert float(ramped["loss_pseudo"]) == pytest.approx(float(full["loss_pseudo"]), rel=1e-5)  # untouched


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_teacher_flips_average_the_predictions_on_the_flipped_patch(head):
    """``method.teacher_tta: flips``: the pseudo-label probabilities are the mean over the patch and its three
    in-plane flips, mapped back; a flip-equivariant teacher gives its plain prediction."""
    channels = 2 if head == "softmax" else 1
    x = torch.randn(2, 1, 2, 6, 6)

    def ramp(t):  # not flip-equivariant: the foreground evidence grows to the right
        r = torch.arange(t.shape[-1], dtype=t.dtype).view(1, 1, 1, 1, -1)
        fg = t + r - 2.5
        return torch.cat([torch.zeros_like(fg), fg], 1) if channels == 2 else fg

    def p_fg(lg):
        return torch.sigmoid(lg[:, 0]) if head == "sigmoid" else torch.softmax(lg, 1)[:, 1]

    plain = build_method(MethodConfig(name="masktwins"), head, AugmentConfig(), (2, 6, 6), (40, 8, 8))
    tta = build_method(MethodConfig(name="masktwins", teacher_tta="flips"), head, AugmentConfig(), (2, 6, 6),
                       (40, 8, 8))
    assert torch.equal(plain.teacher_logits(ramp, x), ramp(x))
    expected = sum(p_fg(ramp(x.flip(d) if d else x)).flip(d) if d else p_fg(ramp(x))
                   for d in [(), (-1,), (-2,), (-2, -1)]) / 4
    torch.testing.assert_close(p_fg(tta.teacher_logits(ramp, x)), expected, atol=1e-5, rtol=1e-5)
    same = lambda t: torch.cat([torch.zeros_like(t), t], 1) if channels == 2 else t  # noqa: E731 - equivariant
    torch.testing.assert_close(p_fg(tta.teacher_logits(same, x)), p_fg(same(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
def test_source_mask_prob_hides_whole_sections_of_source_patches_only_while_adapting(prob):
    """``method.source_mask_prob``: source patches of adapting steps are seen through the method's section mask
    (the sparse view or its complement) with that probability; labels, the batch size and pre-adaptation steps are
    untouched, and 0 leaves the source exactly as it was."""
    m = build_method(MethodConfig(name="masktwins", mask_block=(1, 8, 8), keep_ratio=0.3, source_mask_prob=prob,
                                  adapt_from_step=5, strong_augment=False), "softmax", AugmentConfig(), (10, 8, 8))
    xs = torch.rand(400, 1, 10, 8, 8) + 1.0  # strictly positive: a zero voxel was masked
    out = m.mask_source(xs, torch.Generator().manual_seed(0))
    hidden = (out == 0).all(dim=(-2, -1))[:, 0]  # (B, Z): whole sections hidden
    assert torch.equal(out == 0, hidden[:, None, :, None, None].expand_as(out))
    visible = ~hidden
    assert torch.equal(out[visible[:, None, :, None, None].expand_as(out)],
                       xs[visible[:, None, :, None, None].expand_as(xs)])
    masked = hidden.any(dim=1)
    assert masked.float().mean().item() == pytest.approx(prob, abs=0.08)
    if prob == 1.0:  # sparse views keep ~30 % of the sections, dense ones ~70 %: overall about half
        assert hidden.float().mean().item() == pytest.approx(0.5, abs=0.05)
    batch = _batch()
    batch["source_image"] = batch["source_image"].abs() + 1.0  # strictly positive again
    clean = batch["source_image"]
    net = _Recorder()
    m.losses(net, _Recorder(), batch, 4, torch.Generator().manual_seed(0))  # before adapting: the clean source
    assert torch.equal(net.inputs[-1][: clean.shape[0]], clean)
    m.losses(net, _Recorder(), batch, 5, torch.Generator().manual_seed(1))
    src_in = net.inputs[-1][: clean.shape[0]]
    if prob == 0.0:
        assert torch.equal(src_in, clean)
    if prob == 1.0:
        assert (src_in == 0).any() and torch.equal(src_in[src_in != 0], clean[src_in != 0])


def test_directed_agreement_trains_only_the_view_that_hides_each_voxel():
    from masktwins_bio.methods.losses import consistency_mse, directed_consistency_mse

    a = torch.randn(1, 2, 2, 3, 3, requires_grad=True)
    b = torch.randn(1, 2, 2, 3, 3, requires_grad=True)
    m_a = torch.zeros(1, 1, 2, 3, 3)
    m_a[:, :, 0] = 1  # view a sees section 0, view b (its complement) section 1
    loss = directed_consistency_mse(a, b, m_a, 1 - m_a)
    loss.backward()
    assert torch.all(a.grad[:, :, 0] == 0) and torch.all(a.grad[:, :, 1] != 0)  # a learns where it is blind
    assert torch.all(b.grad[:, :, 1] == 0) and torch.all(b.grad[:, :, 0] != 0)
    # same value as the symmetric MSE; where both views see (or both hide) a voxel, both learn, as symmetric MSE
    assert float(loss.detach()) == pytest.approx(float(consistency_mse(a, b).detach()), rel=1e-6)
    a.grad = b.grad = None
    ones = torch.ones_like(m_a)
    directed_consistency_mse(a, b, ones, ones).backward()
    ga, gb = a.grad.clone(), b.grad.clone()
    a.grad = b.grad = None
    consistency_mse(a, b).backward()
    torch.testing.assert_close(ga, a.grad)
    torch.testing.assert_close(gb, b.grad)


def test_agreement_visible_reaches_the_masktwins_loss():
    def grads(agreement):
        m = build_method(MethodConfig(name="masktwins", mask_block=(1, 16, 16), strong_augment=False,
                                      source_mask_prob=0, agreement=agreement, lambda_target=0.0),
                         "softmax", AugmentConfig(), (4, 16, 16))
        x = torch.zeros(6, 2, 4, 16, 16, requires_grad=True)  # logits of 2 source patches + 2 views of 2 patches
        net = _Recorder()
        net.forward = lambda inp: x + torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        loss, _ = m.losses(net, _Recorder(), _batch(), 0, torch.Generator().manual_seed(0))
        loss.backward()
        return x.grad[2:], m.view_masks

    g_sym, _ = grads("symmetric")
    g_vis, masks = grads("visible")
    seen_by_first = masks[0].expand(-1, 2, -1, -1, -1).bool()
    assert torch.all(g_vis[:2][seen_by_first] == 0) and torch.all(g_vis[2:][~seen_by_first] == 0)
    assert torch.count_nonzero(g_sym[:2][seen_by_first]) > 0


@pytest.mark.parametrize("weight_kind", ["scalar", "voxel"])
@pytest.mark.parametrize("kind", ["ce", "dice_ce"])
def test_a_pseudo_label_region_is_the_loss_of_its_voxels_alone(kind, weight_kind):
    from masktwins_bio.methods.losses import pseudo_label_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 4, 5, 5, generator=g)
    labels = (torch.rand(2, 4, 5, 5, generator=g) > 0.7).long()
    weight = torch.tensor(0.6) if weight_kind == "scalar" else (torch.rand(2, 4, 5, 5, generator=g) > 0.3).float()
    region = torch.zeros(2, 4, 5, 5)
    region[:, 1:3] = 1  # sections 1 and 2 hidden
    sliced_weight = weight if weight_kind == "scalar" else weight[:, 1:3]
    expected = pseudo_label_loss(logits[:, :, 1:3], labels[:, 1:3], sliced_weight, "softmax", kind)
    got = pseudo_label_loss(logits, labels, weight, "softmax", kind, region=region)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_pseudo_voxels_hidden_teaches_each_view_only_where_it_is_blind():
    def grads(pseudo_voxels):
        m = build_method(MethodConfig(name="masktwins", mask_block=(1, 16, 16), strong_augment=False,
                                      source_mask_prob=0, lambda_cm=0.0, pseudo_voxels=pseudo_voxels),
                         "softmax", AugmentConfig(), (4, 16, 16))
        x = torch.zeros(6, 2, 4, 16, 16, requires_grad=True)  # logits of 2 source patches + 2 views of 2 patches
        net = _Recorder()
        net.forward = lambda inp: x + torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        teacher = _Recorder()  # confident (|logit| 6), so the scalar weight is 1
        teacher.forward = lambda inp: torch.cat([torch.zeros_like(inp), (inp > 0).float() * 12 - 6], 1)
        m.losses(net, teacher, _batch(), 0, torch.Generator().manual_seed(0))[0].backward()
        return x.grad[2:], m.view_masks

    g_all, _ = grads("all")
    g_hidden, masks = grads("hidden")
    seen_by_first = masks[0].expand(-1, 2, -1, -1, -1).bool()
    assert torch.all(g_hidden[:2][seen_by_first] == 0) and torch.all(g_hidden[2:][~seen_by_first] == 0)
    assert torch.count_nonzero(g_hidden[:2][~seen_by_first]) > 0 and torch.count_nonzero(g_hidden[2:][seen_by_first])
    assert torch.count_nonzero(g_all[:2][seen_by_first]) > 0
