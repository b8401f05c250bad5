"""SegmentationLoss and OhemCrossEntropy against independently computed cross entropies."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segzoo.train.losses import OhemCrossEntropy, SegmentationLoss

IGNORE = 255


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = [torch.randn(2, 4, 6, 7, generator=generator, requires_grad=True) for _ in range(3)]
    target = torch.randint(0, 4, (2, 6, 7), generator=generator)
    target[:, 0] = IGNORE
    return logits, target


def test_main_plus_weighted_aux(batch):
    (main, aux, _), target = batch
    want = F.cross_entropy(main, target, ignore_index=IGNORE) + 0.4 * F.cross_entropy(aux, target, ignore_index=IGNORE)
    assert SegmentationLoss()((main, aux), target).item() == pytest.approx(want.item(), rel=1e-6)
    assert SegmentationLoss()(main, target).item() == pytest.approx(
        F.cross_entropy(main, target, ignore_index=IGNORE).item(), rel=1e-6)


def test_per_aux_weights_and_count_check(batch):
    logits, target = batch
    ce = [F.cross_entropy(x, target, ignore_index=IGNORE).item() for x in logits]
    loss = SegmentationLoss(aux_weight=[0.5, 0.25])(logits, target)
    assert loss.item() == pytest.approx(ce[0] + 0.5 * ce[1] + 0.25 * ce[2], rel=1e-6)
    assert SegmentationLoss(aux_weight=0.3)(logits, target).item() == pytest.approx(ce[0] + 0.3 * (ce[1] + ce[2]),
                                                                                     rel=1e-6)
    with pytest.raises(ValueError, match="2 weights but the model returned 1 aux"):
        SegmentationLoss(aux_weight=[0.5, 0.25])(logits[:2], target)


def test_ignore_pixels_do_not_count(batch):
    (main, *_), target = batch
    changed = main.detach().clone()
    changed[:, :, 0] = torch.randn_like(changed[:, :, 0]) * 100  # row 0 is ignored
    assert SegmentationLoss()(changed, target).item() == pytest.approx(SegmentationLoss()(main, target).item())


def test_smaller_logits_are_resized(batch):
    _, target = batch
    small = torch.randn(2, 4, 3, 4)
    want = F.cross_entropy(F.interpolate(small, size=(6, 7), mode="bilinear", align_corners=True), target,
                           ignore_index=IGNORE)
    assert SegmentationLoss()(small, target).item() == pytest.approx(want.item(), rel=1e-6)


def test_gradients_flow_to_every_output(batch):
    logits, target = batch
    SegmentationLoss(aux_weight=[0.4, 0.2], ohem=True)(logits, target).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in logits)


def test_all_ignored_gives_zero_with_grad():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE)
    for criterion in (SegmentationLoss(), SegmentationLoss(ohem=True), OhemCrossEntropy()):
        loss = criterion(logits, target)
        assert loss.item() == 0.0
        loss.backward()
        assert logits.grad is not None and logits.grad.abs().sum() == 0


def _confident_batch():
    """All pixels confidently right except 10 hard ones of growing difficulty."""
    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    logits = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 10
    flat = logits.permute(0, 2, 3, 1).reshape(-1, 3)  # a view
    hard = torch.randperm(target.numel(), generator=generator)[:10]
    for rank, index in enumerate(hard.tolist()):
        flat[index, target.flatten()[index]] = -rank * 0.5  # lower true-class logit -> harder
    return logits.requires_grad_(), target


def _numpy_pixel_ce(logits, target):
    x = logits.detach().permute(0, 2, 3, 1).reshape(-1, logits.shape[1]).double().numpy()
    t = target.flatten().numpy()
    log_softmax = x - x.max(1, keepdims=True) - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))
    ce = -log_softmax[np.arange(len(t)), np.where(t == IGNORE, 0, t)]
    return ce, t != IGNORE


def test_ohem_keeps_the_min_kept_hardest():
    logits, target = _confident_batch()
    ce, labelled = _numpy_pixel_ce(logits, target)
    assert (np.exp(-ce) < 0.7).sum() == 10  # only the hard pixels are below the threshold
    # 128 pixels: 1/16 -> 8 and 3 are below the 10 hard pixels; 10000 is capped at 128.
    for min_kept, count in [(1 / 16, 10), (3, 10), (20, 20), (0.5, 64), (10_000, 128)]:
        want = np.sort(ce[labelled])[::-1][:count].mean()
        got = OhemCrossEntropy(min_kept=min_kept)(logits, target)
        assert got.item() == pytest.approx(want, rel=1e-5), min_kept


def test_ohem_counts_min_kept_among_labelled_pixels_only():
    logits, target = _confident_batch()
    target[0] = IGNORE  # 64 labelled pixels left
    ce, labelled = _numpy_pixel_ce(logits, target)
    want = np.sort(ce[labelled])[::-1][:40].mean()
    assert OhemCrossEntropy(min_kept=40)(logits, target).item() == pytest.approx(want, rel=1e-5)
    want = ce[labelled].mean()  # 1000 is capped at the 64 labelled pixels
    assert OhemCrossEntropy(min_kept=1000)(logits, target).item() == pytest.approx(want, rel=1e-5)


def test_ohem_with_threshold_one_is_plain_cross_entropy(batch):
    (main, *_), target = batch
    want = F.cross_entropy(main, target, ignore_index=IGNORE).item()
    assert OhemCrossEntropy(threshold=1.0)(main, target).item() == pytest.approx(want, rel=1e-6)
    assert SegmentationLoss(ohem=True, ohem_threshold=1.5)(main, target).item() == pytest.approx(want, rel=1e-6)


def test_ohem_under_low_precision(batch):
    (main, *_), target = batch
    want = OhemCrossEntropy(threshold=0.5)(main, target)
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = OhemCrossEntropy(threshold=0.5)(main.to(dtype), target)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(want.item(), rel=2e-2)


def test_ohem_argument_checks():
    with pytest.raises(ValueError, match="threshold"):
        OhemCrossEntropy(threshold=0)
    with pytest.raises(ValueError, match="min_kept"):
        OhemCrossEntropy(min_kept=-1)
