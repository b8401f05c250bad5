"""build_loss specs (names, weights, options, errors), CombinedLoss, and SegmentationLoss's loss argument."""
from __future__ import annotations

import pytest
import torch

from segzoo.errors import ConfigError
from segzoo.train import (
    LOSSES,
    CombinedLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    LovaszLoss,
    OhemCrossEntropy,
    SegmentationLoss,
    TverskyLoss,
    build_loss,
)

IGNORE = 255


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, generator=generator)
    target = torch.randint(0, 3, (2, 5, 6), generator=generator)
    target[:, 0] = IGNORE
    return logits, target


def test_the_known_names():
    assert LOSSES == {"ce": CrossEntropyLoss, "ohem": OhemCrossEntropy, "dice": DiceLoss, "focal": FocalLoss,
                      "lovasz": LovaszLoss, "tversky": TverskyLoss}


def test_one_name_gives_the_loss_itself():
    for name, cls in LOSSES.items():
        loss = build_loss(name, ignore_index=7, class_weight=[1.0, 2.0, 3.0])
        assert type(loss) is cls and loss.ignore_index == 7 and loss.mode == "multiclass"
        assert loss.class_weight.tolist() == [1.0, 2.0, 3.0]


def test_sums_and_weights(batch):
    loss = build_loss("ce:1+dice:0.5")
    assert isinstance(loss, CombinedLoss) and loss.weights == (1.0, 0.5)
    assert [type(term) for term in loss.losses] == [CrossEntropyLoss, DiceLoss]
    want = CrossEntropyLoss()(*batch) + 0.5 * DiceLoss()(*batch)
    assert loss(*batch).item() == pytest.approx(want.item(), rel=1e-6)
    assert build_loss(" CE + Dice:2 ").weights == (1.0, 2.0)  # spaces and case do not matter
    assert build_loss("lovasz:0.25").weights == (0.25,)  # a weighted single term stays weighted
    assert build_loss("ce+ce").weights == (1.0, 1.0)


def test_combined_loss_is_the_weighted_sum(batch):
    loss = CombinedLoss([(0.3, FocalLoss()), (2, LovaszLoss())])
    want = 0.3 * FocalLoss()(*batch) + 2 * LovaszLoss()(*batch)
    assert loss(*batch).dtype == torch.float32 and loss(*batch).item() == pytest.approx(want.item(), rel=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        CombinedLoss([])
    with pytest.raises(ValueError, match="finite number"):
        CombinedLoss([(float("nan"), DiceLoss())])


def test_unknown_name_lists_the_known_ones_with_a_suggestion():
    with pytest.raises(ConfigError) as error:
        build_loss("ce+dise")
    message = str(error.value)
    assert message == ("unknown loss 'dise' in loss spec 'ce+dise'; known losses: ce, ohem, dice, focal, lovasz, "
                       "tversky. Did you mean: dice?")
    with pytest.raises(ConfigError, match="unknown loss 'crossentropy'.*tversky.$"):
        build_loss("crossentropy")


@pytest.mark.parametrize("spec, match", [
    ("", "a loss spec must be a non-empty string"),
    ("ce++dice", "an empty term in loss spec 'ce\\+\\+dice'"),
    ("ce:", "missing weight after 'ce:'"),
    ("ce:abc", "the weight of 'ce' in loss spec 'ce:abc' must be a number >= 0, got 'abc'"),
    ("ce:-1", "must be a number >= 0, got '-1'"),
    ("ce:inf", "got 'inf'"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_loss(spec)


def test_options_go_to_every_term_that_takes_them():
    loss = build_loss("ce+focal+dice+tversky", gamma=3.0, smooth=1.0, label_smoothing=0.1)
    ce, focal, dice, tversky = loss.losses
    assert ce.label_smoothing == 0.1 and focal.gamma == 3.0 and tversky.gamma == 3.0
    assert dice.smooth == tversky.smooth == 1.0
    assert build_loss("lovasz", per_image=True).per_image


def test_scoped_options_target_one_loss():
    loss = build_loss("focal+tversky", mode="binary", alpha=0.25, tversky_alpha=0.3, tversky_beta=0.7)
    focal, tversky = loss.losses
    assert focal.alpha == 0.25 and (tversky.alpha, tversky.beta) == (0.3, 0.7)
    ohem = build_loss("ohem", ohem_threshold=0.5, ohem_min_kept=100)
    assert (ohem.threshold, ohem.min_kept) == (0.5, 100)
    assert build_loss("ohem", threshold=0.6).threshold == 0.6


def test_unknown_option():
    with pytest.raises(ConfigError) as error:
        build_loss("ce+focal", gama=2)
    assert str(error.value) == ("no term of loss 'ce+focal' accepts the option 'gama'; its options: alpha, gamma, "
                                "label_smoothing. Did you mean: gamma?")
    with pytest.raises(ConfigError, match="no term of loss 'ce' accepts the option 'smooth'"):
        build_loss("ce", smooth=1.0)
    with pytest.raises(ConfigError, match="the option 'ohem_threshold' is for 'ohem' terms, and loss 'ce' has none"):
        build_loss("ce", ohem_threshold=0.5)


def test_bad_option_values_name_the_loss():
    with pytest.raises(ConfigError, match="^loss 'focal': gamma must be a finite number"):
        build_loss("ce+focal", gamma=-1)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_ohem_is_multiclass_only(mode):
    with pytest.raises(ConfigError, match=f"loss 'ohem' supports mode='multiclass' only, got mode='{mode}'"):
        build_loss("ce+ohem", mode=mode)
    with pytest.raises(ConfigError, match="supports mode='multiclass' only"):
        SegmentationLoss(ohem=True, mode=mode)


def test_unknown_mode():
    with pytest.raises(ConfigError, match="mode must be one of 'multiclass', 'binary', 'multilabel', got 'multi'"):
        build_loss("dice", mode="multi")


def test_every_term_gets_the_mode_ignore_index_and_class_weight():
    loss = build_loss("ce+dice+focal+lovasz+tversky", mode="multilabel", ignore_index=-1, class_weight=[1, 2, 3])
    for term in loss.losses:
        assert (term.mode, term.ignore_index, term.class_weight.tolist()) == ("multilabel", -1, [1.0, 2.0, 3.0])


# --------------------------------------------------------------------------------------------------- SegmentationLoss
def test_segmentation_loss_keeps_its_arguments(batch):
    logits, target = batch
    assert isinstance(SegmentationLoss().criterion, CrossEntropyLoss)
    ohem = SegmentationLoss(aux_weight=0.2, ignore_index=IGNORE, ohem=True, ohem_threshold=0.6, ohem_min_kept=5)
    assert isinstance(ohem.criterion, OhemCrossEntropy)
    assert (ohem.criterion.threshold, ohem.criterion.min_kept) == (0.6, 5)
    assert ohem(logits, target).item() == OhemCrossEntropy(0.6, 5, IGNORE)(logits, target).item()
    assert SegmentationLoss("ohem", ohem_threshold=0.6).criterion.threshold == 0.6  # ohem_* reach ohem terms
    assert SegmentationLoss("ohem", ohem_threshold=0.6, threshold=0.5).criterion.threshold == 0.5
    assert SegmentationLoss("ce:0.5", ohem=True).criterion.weights == (0.5,)


def test_segmentation_loss_with_a_sum_and_options(batch):
    logits, target = batch
    loss = SegmentationLoss("ohem+dice:0.5", ohem_min_kept=10, smooth=1.0, class_weight=[1, 1, 2])
    ohem, dice = loss.criterion.losses
    assert ohem.min_kept == 10 and dice.smooth == 1.0 and dice.class_weight.tolist() == [1.0, 1.0, 2.0]
    assert "loss='ohem+dice:0.5'" in repr(loss)


def test_segmentation_loss_refuses_ohem_with_another_loss():
    with pytest.raises(ConfigError, match="ohem=True makes the loss OHEM cross entropy, which conflicts with "
                                          "loss='ce\\+dice'"):
        SegmentationLoss("ce+dice", ohem=True)


def test_segmentation_loss_refuses_a_number_as_its_loss():
    with pytest.raises(ConfigError, match="loss must be a loss spec string.*aux_weight is the second argument"):
        SegmentationLoss(0.4)
