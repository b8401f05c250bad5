"""Every loss in every mode against a float64 numpy formula written here from the definitions: the value, and the
gradient against central finite differences of that formula (ignored pixels included: their gradient must be 0).

The inputs are tiny (N=2, C=3, 5x6) with ignored pixels and class weights; the ``absent`` batches leave a class
out of the target (multiclass), give an image no positive pixel (binary), or leave a label unlabelled in one image
and negative elsewhere (multilabel).
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from segzoo.train.losses import (
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    LovaszLoss,
    OhemCrossEntropy,
    TverskyLoss,
)

IGNORE = 255
N, C, H, W = 2, 3, 5, 6
MODES = ("multiclass", "binary", "multilabel")
WEIGHTS = {"multiclass": [0.5, 2.0, 1.0], "binary": [1.5], "multilabel": [0.5, 2.0, 1.0]}


def make_batch(mode: str, seed: int = 0, absent: bool = False):
    """float32 logits (as float64 numpy too) and an int64 target with about 20% ignored pixels."""
    rng = np.random.default_rng(seed)
    channels = 1 if mode == "binary" else C
    logits = rng.normal(scale=1.5, size=(N, channels, H, W)).astype(np.float32)
    if mode == "multiclass":
        target = rng.integers(0, 2 if absent else C, size=(N, H, W))
        target[rng.random((N, H, W)) < 0.2] = IGNORE
    elif mode == "binary":
        target = rng.integers(0, 2, size=(N, H, W))
        if absent:
            target[1] = 0
        target[rng.random((N, H, W)) < 0.2] = IGNORE
    else:
        target = rng.integers(0, 2, size=(N, C, H, W))
        target[rng.random((N, C, H, W)) < 0.2] = IGNORE
        if absent:
            target[0, 2] = IGNORE
            target[1, 2] = 0
    return logits, target.astype(np.int64)


# ----------------------------------------------------------------------------------------------- numpy references
def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def pixels(x, t, mode):
    """(P, K) logits and targets, one row per pixel (binary: K = 1; multiclass targets: (P,))."""
    z = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
    if mode == "multiclass":
        return z, t.reshape(-1)
    t = t[:, None] if mode == "binary" else t
    return z, t.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def weights_or_ones(w, k):
    return np.ones(k) if w is None else np.asarray(w, dtype=np.float64)


def ref_ce(x, t, mode, w, label_smoothing=0.0):
    z, y = pixels(x, t, mode)
    k, eps = z.shape[1], label_smoothing
    w = weights_or_ones(w, k)
    if mode == "multiclass":
        keep = y != IGNORE
        z, y = z[keep], y[keep]
        nll = -log_softmax(z)
        # torch: (1 - eps) * w_y * nll_y + eps / C * sum_c w_c * nll_c, divided by the labelled weight sum_i w_y
        per = (1 - eps) * w[y] * nll[np.arange(len(y)), y] + eps / k * (w * nll).sum(axis=1)
        return per.sum() / w[y].sum()
    valid = y != IGNORE
    s = np.where(valid, y, 0) * (1 - eps) + eps / 2
    bce = -(s * log_sigmoid(z) + (1 - s) * log_sigmoid(-z))
    weight = w[None, :] * valid
    return (bce * weight).sum() / weight.sum()


def ref_ohem(x, t, mode, w, threshold=0.7, min_kept=1 / 16):
    z, y = pixels(x, t, mode)
    w = weights_or_ones(w, z.shape[1])
    labelled = y != IGNORE
    y = np.where(labelled, y, 0)
    ce = -log_softmax(z)[np.arange(len(y)), y]
    kept = labelled & (np.exp(-ce) < threshold)
    count = min(int(min_kept * y.size) if min_kept < 1 else int(min_kept), labelled.sum())
    if kept.sum() < count:
        kept = np.zeros_like(labelled)
        kept[np.argsort(-np.where(labelled, ce, -1.0))[:count]] = True
    return (ce * w[y] * kept).sum() / (w[y] * kept).sum()


def ref_focal(x, t, mode, w, gamma=2.0, alpha=None):
    z, y = pixels(x, t, mode)
    w = weights_or_ones(w, z.shape[1])
    if mode == "multiclass":
        keep = y != IGNORE
        z, y = z[keep], y[keep]
        log_pt = log_softmax(z)[np.arange(len(y)), y]
        per = (1 - np.exp(log_pt)) ** gamma * -log_pt
        if alpha is not None:
            per = per * np.asarray(alpha)[y]
        return (per * w[y]).sum() / w[y].sum()
    valid = y != IGNORE
    positive = y == 1
    log_pt = np.where(positive, log_sigmoid(z), log_sigmoid(-z))
    per = (1 - np.exp(log_pt)) ** gamma * -log_pt
    if alpha is not None:
        per = per * np.where(positive, alpha, 1 - alpha)
    weight = w[None, :] * valid
    return (per * weight).sum() / weight.sum()


def ref_tversky(x, t, mode, w, alpha=0.5, beta=0.5, gamma=1.0, smooth=0.0, eps=1e-7, log_loss=False):
    z, y = pixels(x, t, mode)
    k = z.shape[1]
    losses = []
    for c in range(k):
        if mode == "multiclass":
            keep = y != IGNORE
            p = np.exp(log_softmax(z[keep]))[:, c]
            g = (y[keep] == c).astype(np.float64)
        else:
            keep = y[:, c] != IGNORE
            p = np.exp(log_sigmoid(z[keep, c]))
            g = y[keep, c].astype(np.float64)
        tp, fp, fn = (p * g).sum(), (p * (1 - g)).sum(), ((1 - p) * g).sum()
        score = (tp + smooth) / max(tp + alpha * fp + beta * fn + smooth, eps)
        loss = -np.log(max(score, eps)) if log_loss else 1 - score
        losses.append(loss if g.sum() > 0 else 0.0)  # a class with no target pixel counts as 0
    w = weights_or_ones(w, k)
    return ((w * np.array(losses)).sum() / w.sum()) ** gamma


ref_dice = partial(ref_tversky, alpha=0.5, beta=0.5, gamma=1.0)


def lovasz_extension(errors, gt):
    """sum_i e_(i) * (D(M_i) - D(M_(i-1))) over the errors sorted down, M_i the i worst pixels and
    D(M) = |M| / |gt ∪ M| the Jaccard loss of getting M wrong (|gt ∪ M_i| = |gt| + |M_i \\ gt|)."""
    order = np.argsort(-errors, kind="stable")
    e, g = errors[order], gt[order].astype(bool)
    size = np.arange(1, len(e) + 1)
    jaccard_loss = size / (g.sum() + np.cumsum(~g))
    return (e * np.diff(np.concatenate([[0.0], jaccard_loss]))).sum()


def ref_lovasz(x, t, mode, w, per_image=False):
    groups = [(x[i:i + 1], t[i:i + 1]) for i in range(len(x))] if per_image else [(x, t)]
    group_losses = []
    for gx, gt in groups:
        z, y = pixels(gx, gt, mode)
        losses, classes = [], []
        for c in range(z.shape[1]):
            if mode == "multiclass":
                keep = y != IGNORE
                fg = y[keep] == c
                if not fg.any():  # classes="present"
                    continue
                errors = np.abs(fg - np.exp(log_softmax(z[keep]))[:, c])
            else:
                keep = y[:, c] != IGNORE
                if not keep.any():
                    continue
                fg = y[keep, c] == 1
                errors = np.maximum(1 - z[keep, c] * (2.0 * fg - 1), 0)
            losses.append(lovasz_extension(errors, fg))
            classes.append(c)
        if classes:
            wc = weights_or_ones(w, z.shape[1])[classes]
            group_losses.append((wc * np.array(losses)).sum() / wc.sum())
    return float(np.mean(group_losses))


def finite_differences(f, x, h=1e-6):
    x = x.astype(np.float64).copy()
    grad = np.zeros_like(x)
    flat, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + h
        plus = f(x)
        flat[i] = saved - h
        minus = f(x)
        flat[i] = saved
        flat_grad[i] = (plus - minus) / (2 * h)
    return grad


# ------------------------------------------------------------------------------------------------------- cases
ALPHA = {"multiclass": [0.25, 0.5, 1.0], "binary": 0.25, "multilabel": 0.25}

CASES = {  # name: (build(mode, class_weight), reference(x, t, mode, class_weight))
    "ce": (lambda m, w: CrossEntropyLoss(m, class_weight=w), ref_ce),
    "ce-label-smoothing": (lambda m, w: CrossEntropyLoss(m, class_weight=w, label_smoothing=0.1),
                           partial(ref_ce, label_smoothing=0.1)),
    "focal": (lambda m, w: FocalLoss(m, class_weight=w), ref_focal),
    "focal-alpha-gamma": (lambda m, w: FocalLoss(m, class_weight=w, gamma=1.5, alpha=ALPHA[m]),
                          lambda x, t, m, w: ref_focal(x, t, m, w, gamma=1.5, alpha=ALPHA[m])),
    "dice": (lambda m, w: DiceLoss(m, class_weight=w), ref_dice),
    "dice-smooth-log": (lambda m, w: DiceLoss(m, class_weight=w, smooth=1.0, log_loss=True),
                        partial(ref_dice, smooth=1.0, log_loss=True)),
    "tversky": (lambda m, w: TverskyLoss(m, class_weight=w, alpha=0.3, beta=0.7, gamma=0.75),
                partial(ref_tversky, alpha=0.3, beta=0.7, gamma=0.75)),
    "lovasz": (lambda m, w: LovaszLoss(m, class_weight=w), ref_lovasz),
    "lovasz-per-image": (lambda m, w: LovaszLoss(m, class_weight=w, per_image=True),
                         partial(ref_lovasz, per_image=True)),
}


def check_against_reference(loss, reference, x, t, gradient=True):
    logits = torch.from_numpy(x).requires_grad_()
    value = loss(logits, torch.from_numpy(t))
    value.backward()
    assert value.dtype == torch.float32 and value.dim() == 0
    x64 = x.astype(np.float64)
    assert value.item() == pytest.approx(reference(x64), rel=2e-6, abs=1e-7)
    if gradient:
        want = finite_differences(reference, x64)
        np.testing.assert_allclose(logits.grad.numpy(), want, rtol=1e-4, atol=2e-6)
    return logits.grad


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("absent", [False, True], ids=["all-present", "absent"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_value_and_gradient_match_the_formula(case, mode, absent, weighted):
    build, reference = CASES[case]
    w = WEIGHTS[mode] if weighted else None
    x, t = make_batch(mode, seed=len(case), absent=absent)
    # Finite differences are the slow part: the weighted case covers the unweighted formula (all weights 1 aside).
    grad = check_against_reference(build(mode, w), lambda z: reference(z, t, mode, w), x, t, gradient=weighted)
    ignored = (t == IGNORE) if mode == "multilabel" else np.broadcast_to((t == IGNORE)[:, None], x.shape)
    assert (grad.numpy()[ignored] == 0).all()  # exactly zero, not just small


@pytest.mark.parametrize("threshold, min_kept", [(0.7, 0), (0.3, 25), (0.9, 1 / 16)])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_ohem_value_and_gradient_match_the_formula(threshold, min_kept, weighted):
    w = WEIGHTS["multiclass"] if weighted else None
    x, t = make_batch("multiclass", seed=3)
    loss = OhemCrossEntropy(threshold, min_kept, IGNORE, class_weight=w)
    check_against_reference(loss, lambda z: ref_ohem(z, t, "multiclass", w, threshold, min_kept), x, t)
