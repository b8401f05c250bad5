"""segzoo's losses against segmentation_models_pytorch (smp) 0.6 as a reference: equal values and gradients.

Where smp defines a loss differently on purpose, the comparison is made on inputs where both agree, or against the
smp expression that matches, and the difference is written down:

- Dice, Tversky: same definitions (smp's ``smooth``/``eps``, classes absent from the target count as 0 in a mean
  over all classes, Tversky's ``gamma`` on the mean): compared directly, ignored pixels included.
- Focal, binary: the same (alpha / 1 - alpha balancing, mean over labelled pixels).
- Focal, multiclass: smp's ``FocalLoss("multiclass")`` is a one-vs-rest *sigmoid* focal loss per class, segzoo's a
  softmax focal loss: segzoo is compared with smp's ``softmax_focal_loss_with_logits`` on the labelled pixels,
  and smp's multiclass loss with segzoo's multilabel one on one-hot targets (the same thing).
- Focal, multilabel: smp's ignore_index fails on ``(N, C, H, W)`` targets (a mask/shape mismatch), so the
  comparison has no ignored entry.
- Lovasz, multilabel: smp pools every channel into one binary problem, segzoo averages the Lovasz hinge of each
  label: compared with the mean of smp's binary loss per channel.
- Lovasz, ``per_image=True``: smp counts an all-ignored image as a 0 (binary) or fails (multiclass), segzoo skips
  it: compared on batches where every image has labelled pixels.
- CE / BCE: smp's SoftCrossEntropyLoss / SoftBCEWithLogitsLoss zero the ignored pixels but divide by all pixels;
  segzoo divides by the labelled ones. smp's BCE ``smooth_factor`` s maps 1 -> 1 - s and 0 -> s, segzoo's
  ``label_smoothing`` eps maps them to 1 - eps/2 and eps/2 (torch's two-class convention): s = eps / 2.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segzoo.train.losses import CrossEntropyLoss, DiceLoss, FocalLoss, LovaszLoss, TverskyLoss

pytest.importorskip("segmentation_models_pytorch")
smp = pytest.importorskip("segmentation_models_pytorch.losses")
smp_functional = pytest.importorskip("segmentation_models_pytorch.losses._functional")

IGNORE = 255
N, C, H, W = 2, 3, 5, 6
MODES = ("multiclass", "binary", "multilabel")


def make_batch(mode: str, seed: int = 0, ignore: bool = True):
    generator = torch.Generator().manual_seed(seed)
    channels = 1 if mode == "binary" else C
    logits = torch.randn(N, channels, H, W, generator=generator) * 1.5
    shape = (N, C, H, W) if mode == "multilabel" else (N, H, W)
    target = torch.randint(0, C if mode == "multiclass" else 2, shape, generator=generator)
    if ignore:
        target[torch.rand(shape, generator=generator) < 0.2] = IGNORE
        target[(0,) * (target.dim() - 1) + (slice(0, 2),)] = IGNORE  # a few for sure
    return logits, target


def assert_same(ours, theirs, logits, target, their_target=None, scale=1.0):
    """Equal value and gradient of ``ours(logits, target)`` and ``scale * theirs(logits, their_target)``."""
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    mine = ours(a, target)
    reference = scale * theirs(b, target if their_target is None else their_target)
    mine.backward()
    reference.backward()
    assert mine.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-7)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("options", [{}, {"smooth": 1.0}, {"log_loss": True}], ids=["plain", "smooth", "log"])
@pytest.mark.parametrize("mode", MODES)
def test_dice(mode, options):
    logits, target = make_batch(mode, seed=1)
    if mode == "multiclass":
        target[target == 2] = 0  # class 2 absent from the target: masked out by both
    weights = None if mode == "binary" else [0.5, 2.0, 1.0]  # smp refuses class weights in binary mode
    assert_same(DiceLoss(mode, class_weight=weights, **options),
                smp.DiceLoss(mode, ignore_index=IGNORE, class_weights=weights, **options), logits, target)


@pytest.mark.parametrize("options", [{"alpha": 0.3, "beta": 0.7}, {"alpha": 0.7, "beta": 0.3, "gamma": 0.75},
                                     {"gamma": 1.5, "smooth": 1.0}], ids=["recall", "focal", "smooth"])
@pytest.mark.parametrize("mode", MODES)
def test_tversky(mode, options):
    logits, target = make_batch(mode, seed=2)
    weights = None if mode == "binary" else [1.0, 3.0, 0.5]
    assert_same(TverskyLoss(mode, class_weight=weights, **options),
                smp.TverskyLoss(mode, ignore_index=IGNORE, class_weights=weights, **options), logits, target)


@pytest.mark.parametrize("alpha, gamma", [(None, 2.0), (0.25, 2.0), (0.6, 0.5)])
def test_focal_binary(alpha, gamma):
    logits, target = make_batch("binary", seed=3)
    assert_same(FocalLoss("binary", alpha=alpha, gamma=gamma),
                smp.FocalLoss("binary", alpha=alpha, gamma=gamma, ignore_index=IGNORE), logits, target)


@pytest.mark.parametrize("weights", [None, [0.5, 2.0, 1.0]])
def test_focal_multilabel_without_ignored_entries(weights):
    logits, target = make_batch("multilabel", seed=4, ignore=False)
    assert_same(FocalLoss("multilabel", alpha=0.25, class_weight=weights),
                smp.FocalLoss("multilabel", alpha=0.25, class_weights=weights), logits, target)


@pytest.mark.parametrize("gamma", [2.0, 0.5])
def test_focal_multiclass_is_the_softmax_focal_loss_of_the_labelled_pixels(gamma):
    logits, target = make_batch("multiclass", seed=5)
    labelled = target != IGNORE

    def theirs(x, t):
        rows = x.permute(0, 2, 3, 1)[labelled]  # (P, C) of the labelled pixels
        return smp_functional.softmax_focal_loss_with_logits(rows, t[labelled], gamma=gamma)

    assert_same(FocalLoss("multiclass", gamma=gamma), theirs, logits, target)


@pytest.mark.parametrize("weights", [None, [0.5, 2.0, 1.0]])
def test_smp_multiclass_focal_is_segzoo_multilabel_focal_on_one_hot_targets(weights):
    logits, target = make_batch("multiclass", seed=6)
    one_hot = F.one_hot(target.clamp(max=C - 1), C).permute(0, 3, 1, 2)
    one_hot = one_hot.masked_fill((target == IGNORE).unsqueeze(1), IGNORE)
    assert_same(FocalLoss("multilabel", alpha=0.25, class_weight=weights),
                smp.FocalLoss("multiclass", alpha=0.25, ignore_index=IGNORE, class_weights=weights),
                logits, one_hot, their_target=target)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("mode", ["multiclass", "binary"])
def test_lovasz(mode, per_image):
    logits, target = make_batch(mode, seed=7)
    assert (target != IGNORE).flatten(1).any(1).all()  # every image has labelled pixels (see the docstring)
    assert_same(LovaszLoss(mode, per_image=per_image),
                smp.LovaszLoss(mode, per_image=per_image, ignore_index=IGNORE), logits, target)


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_multilabel_is_the_mean_of_the_binary_loss_per_label(per_image):
    logits, target = make_batch("multilabel", seed=8)
    binary = smp.LovaszLoss("binary", per_image=per_image, ignore_index=IGNORE)

    def theirs(x, t):
        return sum(binary(x[:, c:c + 1], t[:, c]) for c in range(C)) / C

    assert_same(LovaszLoss("multilabel", per_image=per_image), theirs, logits, target)


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_bce_against_soft_bce(mode, eps):
    logits, target = make_batch(mode, seed=9)
    entries = target if mode == "multilabel" else target.unsqueeze(1)
    labelled = (entries != IGNORE).sum().item()
    theirs = smp.SoftBCEWithLogitsLoss(ignore_index=IGNORE, smooth_factor=eps / 2 if eps else None)
    assert_same(CrossEntropyLoss(mode, label_smoothing=eps), theirs, logits, target,
                their_target=entries.float(), scale=entries.numel() / labelled)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_ce_against_soft_ce(eps):
    logits, target = make_batch("multiclass", seed=10)
    labelled = (target != IGNORE).sum().item()
    theirs = smp.SoftCrossEntropyLoss(smooth_factor=eps, ignore_index=IGNORE)
    assert_same(CrossEntropyLoss("multiclass", label_smoothing=eps), theirs, logits, target,
                scale=target.numel() / labelled)
