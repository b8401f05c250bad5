"""The contract every loss keeps in every mode: empty batches, low precision, class weights, ignored pixels, input
checks, and use through SegmentationLoss on (main, aux) outputs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segzoo.train import (
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    LovaszLoss,
    OhemCrossEntropy,
    SegmentationLoss,
    TverskyLoss,
)

IGNORE = 255
N, C, H, W = 2, 3, 5, 6
MODES = ("multiclass", "binary", "multilabel")

LOSSES = {  # name: (build(mode, **kwargs), modes)
    "ce": (lambda mode, **kw: CrossEntropyLoss(mode, label_smoothing=0.1, **kw), MODES),
    "ohem": (lambda mode, **kw: OhemCrossEntropy(0.7, 8, mode=mode, **kw), ("multiclass",)),
    "dice": (lambda mode, **kw: DiceLoss(mode, **kw), MODES),
    "dice-log": (lambda mode, **kw: DiceLoss(mode, log_loss=True, smooth=1.0, **kw), MODES),
    "focal": (lambda mode, **kw: FocalLoss(mode, **kw), MODES),
    "lovasz": (lambda mode, **kw: LovaszLoss(mode, **kw), MODES),
    "lovasz-per-image": (lambda mode, **kw: LovaszLoss(mode, per_image=True, **kw), MODES),
    "tversky": (lambda mode, **kw: TverskyLoss(mode, alpha=0.3, beta=0.7, gamma=0.75, **kw), MODES),
}
CASES = [(name, mode) for name, (_, modes) in LOSSES.items() for mode in modes]
IDS = [f"{name}-{mode}" for name, mode in CASES]


def build(name, mode, **kwargs):
    return LOSSES[name][0](mode, **kwargs)


def make_batch(mode, seed=0, size=(H, W)):
    generator = torch.Generator().manual_seed(seed)
    channels = 1 if mode == "binary" else C
    logits = torch.randn(N, channels, *size, generator=generator)
    shape = (N, C, H, W) if mode == "multilabel" else (N, H, W)
    target = torch.randint(0, C if mode == "multiclass" else 2, shape, generator=generator)
    target[torch.rand(shape, generator=generator) < 0.2] = IGNORE
    return logits, target


@pytest.mark.parametrize("name, mode", CASES, ids=IDS)
def test_all_ignored_gives_zero_with_a_connected_zero_gradient(name, mode):
    logits, target = make_batch(mode)
    target.fill_(IGNORE)
    logits.requires_grad_()
    loss = build(name, mode, class_weight=[1.0] * logits.shape[1])(logits, target)
    assert loss.dtype == torch.float32 and loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and (logits.grad == 0).all()


@pytest.mark.parametrize("name, mode", CASES, ids=IDS)
def test_float32_under_bf16_autocast(name, mode):
    logits, target = make_batch(mode, seed=1)
    loss = build(name, mode)
    want = loss(logits, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        same_input = loss(logits, target)
        low_precision = loss(logits.bfloat16().requires_grad_(), target)
        low_precision.backward()
    assert same_input.dtype == low_precision.dtype == torch.float32 and low_precision.dim() == 0
    assert same_input.item() == want.item()  # autocast is off inside: float32 math, bit for bit
    assert low_precision.item() == pytest.approx(want.item(), rel=3e-2, abs=1e-3)
    assert loss(logits.double(), target).dtype == torch.float32


@pytest.mark.parametrize("name, mode", CASES, ids=IDS)
def test_ignored_pixels_change_nothing(name, mode):
    logits, target = make_batch(mode, seed=2)
    ignored = target == IGNORE
    ignored = ignored if mode == "multilabel" else ignored.unsqueeze(1).expand_as(logits)
    changed = torch.where(ignored, torch.randn_like(logits) * 50, logits).requires_grad_()
    loss = build(name, mode)
    assert loss(changed, target).item() == pytest.approx(loss(logits, target).item(), rel=1e-6)
    loss(changed, target).backward()
    assert (changed.grad[ignored] == 0).all() and changed.grad.abs().sum() > 0


@pytest.mark.parametrize("name, mode", CASES, ids=IDS)
def test_uniform_class_weights_change_nothing(name, mode):
    logits, target = make_batch(mode, seed=3)
    loss = build(name, mode)(logits, target)
    weighted = build(name, mode, class_weight=[2.5] * logits.shape[1])(logits, target)
    assert weighted.item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("name, mode", CASES, ids=IDS)
def test_class_weight_count_is_checked_at_forward(name, mode):
    logits, target = make_batch(mode)
    loss = build(name, mode, class_weight=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"^class_weight has 4 weights but the logits have \d class"):
        loss(logits, target)


@pytest.mark.parametrize("name, mode", CASES, ids=IDS)
def test_main_plus_aux_through_segmentation_loss(name, mode):
    main, target = make_batch(mode, seed=4)
    aux, _ = make_batch(mode, seed=5, size=(3, 4))  # resized bilinearly, align_corners=True
    main.requires_grad_(), aux.requires_grad_()
    criterion = SegmentationLoss(aux_weight=0.3)
    criterion.criterion = build(name, mode)  # any built loss works as the criterion
    loss = criterion((main, aux), target)
    resized = F.interpolate(aux, size=(H, W), mode="bilinear", align_corners=True)
    want = build(name, mode)(main, target) + 0.3 * build(name, mode)(resized, target)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(want.item(), rel=1e-6)
    loss.backward()
    assert main.grad.abs().sum() > 0 and aux.grad.abs().sum() > 0


@pytest.mark.parametrize("spec", ["ce", "dice", "focal", "lovasz", "tversky", "ce+dice:0.5"])
@pytest.mark.parametrize("mode", MODES)
def test_segmentation_loss_builds_the_spec_for_the_mode(spec, mode):
    main, target = make_batch(mode, seed=6)
    aux, _ = make_batch(mode, seed=7)
    loss = SegmentationLoss(spec, mode=mode, aux_weight=[0.5], gamma=1.0) if spec == "focal" else \
        SegmentationLoss(spec, mode=mode, aux_weight=[0.5])
    criterion = loss.criterion
    assert loss((main, aux), target).item() == pytest.approx(
        (criterion(main, target) + 0.5 * criterion(aux, target)).item(), rel=1e-6)


# --------------------------------------------------------------------------------- torch's semantics and identities
def test_multiclass_ce_is_torch_weighted_mean_with_label_smoothing():
    logits, target = make_batch("multiclass", seed=8)
    weight = torch.tensor([0.5, 2.0, 1.0])
    for eps in (0.0, 0.1):
        want = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE, label_smoothing=eps)
        got = CrossEntropyLoss(class_weight=weight, label_smoothing=eps)(logits, target)
        assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_binary_ce_is_torch_bce_over_labelled_pixels():
    logits, target = make_batch("binary", seed=9)
    labelled = target != IGNORE
    want = F.binary_cross_entropy_with_logits(logits[:, 0][labelled], target[labelled].float())
    assert CrossEntropyLoss("binary")(logits, target).item() == pytest.approx(want.item(), rel=1e-6)


def test_ohem_with_threshold_one_is_weighted_cross_entropy():
    logits, target = make_batch("multiclass", seed=10)
    weight = torch.tensor([0.5, 2.0, 1.0])
    want = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    assert OhemCrossEntropy(1.0, class_weight=weight)(logits, target).item() == pytest.approx(want.item(), rel=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_identities_between_losses(mode):
    logits, target = make_batch(mode, seed=11)
    ce = CrossEntropyLoss(mode)(logits, target).item()
    assert FocalLoss(mode, gamma=0.0)(logits, target).item() == pytest.approx(ce, rel=1e-6)
    dice = DiceLoss(mode)(logits, target).item()
    assert TverskyLoss(mode)(logits, target).item() == pytest.approx(dice, rel=1e-6)


def test_float_targets_in_binary_and_multilabel_modes():
    for mode in ("binary", "multilabel"):
        logits, target = make_batch(mode, seed=12)
        for loss in (CrossEntropyLoss(mode), DiceLoss(mode), FocalLoss(mode), LovaszLoss(mode)):
            assert loss(logits, target.float()).item() == loss(logits, target).item()


@pytest.mark.parametrize("mode", MODES)
def test_saturated_predictions_keep_finite_gradients(mode):
    """gamma < 1 has an infinite slope at 0 (Tversky) or at p_t = 1 (focal): no NaN reaches the gradient."""
    logits, target = make_batch(mode, seed=13)
    if mode == "multiclass":
        perfect = F.one_hot(target.clamp(max=C - 1), C).permute(0, 3, 1, 2).float() * 200 - 100
    else:
        entries = target if mode == "multilabel" else target.unsqueeze(1)
        perfect = (entries.clamp(max=1).float() * 200 - 100)
    for loss in (TverskyLoss(mode, gamma=0.5), FocalLoss(mode, gamma=0.5), DiceLoss(mode, log_loss=True)):
        x = perfect.clone().requires_grad_()
        value = loss(x, target)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(x.grad).all(), type(loss).__name__


# --------------------------------------------------------------------------------------------------- input checks
@pytest.mark.parametrize("mode, logits_shape, target, match", [
    ("multiclass", (2, 3, 5, 6), torch.full((2, 5, 6), 3), r"expected target values class indices in \[0, 3\) or "
                                                          r"ignore_index=255 in multiclass mode, got 3"),
    ("multiclass", (2, 3, 5, 6), torch.zeros(2, 5, 6), "expected an integer target of class indices"),
    ("multiclass", (2, 3, 5, 6), torch.zeros(2, 5, 7, dtype=torch.long),
     r"expected a target of shape \(N, H, W\) = \(2, 5, 6\), got \(2, 5, 7\)"),
    ("multiclass", (2, 3, 5), torch.zeros(2, 5, dtype=torch.long), r"expected logits of shape \(N, C, H, W\)"),
    ("binary", (2, 2, 5, 6), torch.zeros(2, 5, 6, dtype=torch.long), r"\(N, 1, H, W\) in binary mode"),
    ("binary", (2, 1, 5, 6), torch.full((2, 5, 6), 2), r"expected target values 0, 1 or ignore_index=255 in "
                                                       r"binary mode, got 2"),
    ("binary", (2, 1, 5, 6), torch.full((2, 5, 6), 0.5), "got 0.5"),
    ("multilabel", (2, 3, 5, 6), torch.zeros(2, 5, 6, dtype=torch.long),
     r"expected a target of shape \(N, C, H, W\) = \(2, 3, 5, 6\) in multilabel mode, got \(2, 5, 6\)"),
])
def test_bad_inputs_are_one_line_value_errors(mode, logits_shape, target, match):
    for loss in (CrossEntropyLoss(mode), DiceLoss(mode), FocalLoss(mode), LovaszLoss(mode), TverskyLoss(mode)):
        with pytest.raises(ValueError, match=match) as error:
            loss(torch.randn(logits_shape), target)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("make, match", [
    (lambda: OhemCrossEntropy(mode="binary"), "OhemCrossEntropy supports mode='multiclass' only, got mode='binary'"),
    (lambda: DiceLoss("multi-class"), "mode must be one of 'multiclass', 'binary', 'multilabel'"),
    (lambda: FocalLoss(alpha=0.25), "alpha must be None or one factor per class in multiclass mode"),
    (lambda: FocalLoss("binary", alpha=1.5), r"alpha must be a finite number in \[0.0, 1.0\]"),
    (lambda: TverskyLoss(gamma=0), "gamma must be > 0"),
    (lambda: DiceLoss(class_weight=[1.0, -1.0]), "class_weight must hold finite weights >= 0"),
    (lambda: DiceLoss(class_weight=[[1.0]]), "class_weight must be a non-empty sequence"),
    (lambda: CrossEntropyLoss(label_smoothing=2), "label_smoothing"),
    (lambda: LovaszLoss(ignore_index=None), "ignore_index must be an int"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_focal_alpha_count_is_checked_at_forward():
    logits, target = make_batch("multiclass")
    with pytest.raises(ValueError, match="alpha has 2 weights but the logits have 3 classes"):
        FocalLoss(alpha=[1.0, 2.0])(logits, target)


def test_class_weight_is_shown_and_stays_out_of_the_state_dict():
    loss = DiceLoss(class_weight=[1.0, 2.0, 3.0])
    assert loss.state_dict() == {} and loss.class_weight.dtype == torch.float32
    assert "class_weight=[1.0, 2.0, 3.0]" in repr(loss)
