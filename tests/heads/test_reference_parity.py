"""Converted reference-zoo checkpoints (the ``*.ref_*`` entries) reproduce the reference code's own outputs.

``tests/reference_data/reference/make_reference_outputs.py`` ran the reference code (AceCoooool/segmentation, whose
README table the entries come from; in a scratch environment, never a dependency of segzoo) for each model family as the
zoo builds it (ResNet-101-v1s, JPU or dilated, aux head, 21 classes) with deterministic weights
(``seeded_reference_value`` in tests/support/reference_zoo.py) on one odd-sized input, and committed samples of
its outputs and each model's state-dict layout. Here the same weights are made from that layout, converted as
``segzoo convert --from reference`` converts a real checkpoint (``convert_upstream(..., "reference")``, to the
zoo entry's config), and run.

Tolerance: 1e-4 of the reference output's largest magnitude (stored as float32; the logits reach 3..56). Measured
on CPU with torch 2.14.1: at most 8e-6 of the scale (DANet), 1e-6..3e-6 for the others; a zeroed attention gamma,
a swapped pair of weights or the other softmax axis is 176x (the channel attention's gamma) to 1e4x the
tolerance off. The default run checks DANet (attention gammas, the reference's softmax axis, the aux head) and
that a wrong structure fails by far; the other families build a ResNet-101 each and are marked slow
(``pytest -m slow tests/heads/test_reference_parity.py``).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch

from segzoo.backbones import FEATURE_NAMES
from segzoo.weights.convert import convert_upstream
from segzoo.zoo import get_pretrained
from support.reference_zoo import (
    DATA,
    FAMILIES,
    key_layouts,
    max_difference,
    output_samples,
    reference_outputs,
    seeded_input,
    seeded_state_dict,
)

KEYS_DIR = DATA.parent / "reference-keys"
CHECKPOINT_KEYS = {"fcn_jpu": "fcn_r50_jpu_aux", "psp_jpu": "psp_r50_jpu_aux", "psp_d8": "psp_r50_d8_aux",
                   "deeplabv3_jpu": "deeplabv3_r50_jpu_aux", "danet_jpu": "danet_r50_jpu_aux",
                   "ocnet_base_jpu": "ocnet_base_r50_jpu_aux", "ocnet_asp_jpu": "ocnet_asp_r50_jpu_aux"}
DEFAULT_TIER = {"danet_jpu"}


@lru_cache(maxsize=1)  # the default run's DANet serves its parity test and the wrong-structure tests
def converted(family: str):
    """(model in eval mode with the converted seeded weights, converted state dict, report)."""
    state = seeded_state_dict(family)
    zoo_name = FAMILIES[family]
    entry = get_pretrained(zoo_name) if zoo_name else None
    model, weights, report = convert_upstream(state, "reference", entry=entry)
    model.load_state_dict(weights, strict=True)
    return model.eval(), weights, report


@pytest.fixture(autouse=True, scope="module")
def _release_models():
    """The cached model and weights (~0.5 GB) do not outlive this module."""
    yield
    converted.cache_clear()


def outputs(model) -> dict[str, torch.Tensor]:
    """What the reference stored of the same run: logits samples and the aux head's logits at c3's size (the
    backbone's c3 of the same forward pass, kept by a hook)."""
    kept = {}
    hook = model.backbone.register_forward_hook(lambda module, args, out: kept.update(features=out) or None)
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(seeded_input()))
            samples = {part: torch.from_numpy(value) for part, value in output_samples(logits.numpy()).items()}
            samples["aux"] = model.aux_head(dict(zip(FEATURE_NAMES, kept["features"]))["c3"])
    finally:
        hook.remove()
    return samples


def worst(model, family: str) -> tuple[float, float, str]:
    """(the largest difference / allowed over the stored outputs, that difference, which output)."""
    ratios = []
    for part, actual in outputs(model).items():
        difference, allowed, _ = max_difference(actual, reference_outputs()[f"{family}/{part}"])
        ratios.append((difference / allowed, difference, part))
    return max(ratios)


def test_committed_layouts_are_the_real_checkpoints():
    """The reference models the outputs came from have the key layout of the published checkpoints (their key
    lists in tests/reference_data/reference-keys are ResNet-50's; ResNet-101 adds layer3 blocks base2.6 .. base2.22)."""
    assert set(key_layouts()) == set(FAMILIES) == set(CHECKPOINT_KEYS)
    for family, name in CHECKPOINT_KEYS.items():
        real = {key: [shape, dtype.replace("torch.", "")]
                for key, (shape, dtype) in json.loads((KEYS_DIR / f"{name}.keys.json").read_text()).items()}
        real.update({key.replace("base2.5.", f"base2.{i}.", 1): spec for i in range(6, 23)
                     for key, spec in real.items() if key.startswith("base2.5.")})
        assert key_layouts()[family] == real, family


def test_the_input_is_the_one_the_reference_ran():
    meta = json.loads((DATA / "models.json").read_text())
    x = seeded_input()
    assert list(x.shape) == meta["input"]["shape"]
    assert float(x.astype(np.float64).sum()) == pytest.approx(meta["input"]["sum"], rel=1e-12)
    for family, model in meta["models"].items():
        assert model["zoo_entry"] == FAMILIES[family]


@pytest.mark.parametrize("family", [pytest.param(family, marks=() if family in DEFAULT_TIER else pytest.mark.slow)
                                    for family in FAMILIES])
def test_converted_model_reproduces_the_reference(family):
    model, _, report = converted(family)
    layout = key_layouts()[family]
    queries = sorted(key for key in layout if ".f_query." in key)  # OCNet's second name of f_key
    assert report.placed == len(model.state_dict()) == len(layout) - len(queries)
    assert sorted(report.shared) == queries and report.dropped == []
    if FAMILIES[family] is None:  # no zoo entry: the converter tells the model from the keys
        assert report.kind == f"reference/{family.removesuffix('_jpu')}"
    for part, actual in outputs(model).items():
        difference, allowed, scale = max_difference(actual, reference_outputs()[f"{family}/{part}"])
        assert difference <= allowed, (f"{family} {part}: differs by {difference:.3g} (allowed {allowed:.3g}, "
                                       f"scale {scale:.3g})")


@pytest.mark.parametrize("change", [
    "zero position gamma", "softmax over keys",
    pytest.param("swap conv51 / conv52", marks=pytest.mark.slow),
    pytest.param("zero channel gamma", marks=pytest.mark.slow),
    pytest.param("swap the aux head's BatchNorm mean / var", marks=pytest.mark.slow)])
def test_a_wrong_structure_fails_by_far(change):
    """One dropped gamma, one swapped pair of same-shaped weights or the other softmax axis is > 100x the
    tolerance off: the tolerance is far below what a wrong conversion gives."""
    model, weights, _ = converted("danet_jpu")
    wrong = dict(weights)
    if change == "softmax over keys":  # the paper's axis, not the reference's
        assert model.head.position_attention.softmax_over == "queries"
        model.head.position_attention.softmax_over = "keys"
    elif change.startswith("zero"):
        key = f"head.{'position' if 'position' in change else 'channel'}_attention.gamma"
        wrong[key] = torch.zeros_like(wrong[key])
    elif change.startswith("swap conv51"):
        for param in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
            wrong[f"head.conv51.{param}"], wrong[f"head.conv52.{param}"] = \
                weights[f"head.conv52.{param}"], weights[f"head.conv51.{param}"]
    else:
        mean, var = "aux_head.block.bn.running_mean", "aux_head.block.bn.running_var"
        wrong[mean], wrong[var] = weights[var], weights[mean].abs() + 0.5
    try:
        model.load_state_dict(wrong, strict=True)
        ratio, difference, part = worst(model, "danet_jpu")
    finally:  # the cached model is the right one again
        model.head.position_attention.softmax_over = "queries"
        model.load_state_dict(weights, strict=True)
    assert ratio > 100, f"{change}: only {ratio:.3g}x the tolerance off ({part}, {difference:.3g})"
