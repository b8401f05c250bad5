"""The battery's save / load check catches a loader that drops BatchNorm statistics or a zero-initialised
parameter (an attention gamma): it randomises them before saving, as at their fresh values the loss is invisible."""
import pytest
import torch

import segzoo.factory
from segzoo import create_model
from segzoo.testing import HeadBattery
from segzoo.weights.checkpoint import save_pretrained

GAMMA = "head.position_attention.gamma"  # DANet's, zero-initialised


class DANetOnce(HeadBattery):  # no Test prefix: pytest does not collect it, the tests below run its check
    head = "danet"
    structures = ({"output_stride": 8},)


def _drop_buffers(model, key):
    return key in dict(model.named_buffers())


def _drop_gamma(model, key):
    return key == GAMMA


DROPS = pytest.mark.parametrize("drop", [_drop_buffers, _drop_gamma], ids=["buffers", "a gamma"])
NOT_RESTORED = {_drop_buffers: r"not restored: .*running_mean", _drop_gamma: rf"not restored: {GAMMA}$"}


def _loader_dropping(drop):
    """A loader that loads every key but those ``drop(model, key)`` picks: they keep the new model's values."""
    def load_weights(model, state, source="checkpoint", new_classes=False):
        model.load_state_dict({k: v for k, v in state.items() if not drop(model, k)}, strict=False)
    return load_weights


def test_the_save_load_check_passes_segzoos_loader(tmp_path):
    DANetOnce().test_save_load_round_trip(DANetOnce.structures[0], tmp_path)


@DROPS
def test_the_save_load_check_fails_a_loader_that_drops(drop, tmp_path, monkeypatch):
    monkeypatch.setattr(segzoo.factory, "load_weights", _loader_dropping(drop))
    with pytest.raises(AssertionError, match=NOT_RESTORED[drop]):
        DANetOnce().test_save_load_round_trip(DANetOnce.structures[0], tmp_path)


@DROPS
def test_without_randomising_the_loss_is_invisible(drop, tmp_path, monkeypatch):
    """Why the check randomises: a model as built, saved and loaded by the dropping loader, gives the same outputs."""
    monkeypatch.setattr(segzoo.factory, "load_weights", _loader_dropping(drop))
    model = DANetOnce().build(aux=True)
    save_pretrained(model, tmp_path)
    loaded = create_model(f"local-dir:{tmp_path}")
    images = torch.randn(1, 3, 50, 66)
    assert torch.equal(loaded(images), model(images))
