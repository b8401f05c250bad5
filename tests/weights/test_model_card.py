"""The model card says what the model's output means and what input it takes (task, bands, normalisation)."""
from __future__ import annotations

from segzoo.config import ModelConfig
from segzoo.weights.model_card import build_model_card


def test_card_of_a_multilabel_four_band_model():
    config = ModelConfig("fcn", "resnet18", 3, mode="multilabel", threshold=0.4, in_chans=4,
                         class_names=("water", "road", "roof"))
    card = build_model_card(config, "someone/roofs")
    assert "images = torch.randn(1, 4, 480, 480)  # normalised 4-band" in card
    assert "masks = torch.sigmoid(logits) > 0.4  # (1, labels, H, W)" in card
    assert "Multi-label: one output channel per label, each label present where its sigmoid is above 0.4" in card
    assert "4-band input (4 channels) in [0, 1], normalised with mean [0.485, 0.456, 0.406, 0.485]" in card
    assert "water, road, roof" in card


def test_card_of_binary_and_multiclass_models():
    binary = build_model_card(ModelConfig("fcn", "resnet18", 1, mode="binary", in_chans=1), "someone/cracks")
    assert "torch.sigmoid(logits)[:, 0] > 0.5  # (1, H, W) foreground" in binary
    assert "Greyscale input (1 channel)" in binary
    multiclass = build_model_card(ModelConfig("fcn", "resnet18", 21), "someone/voc")
    assert "logits.argmax(1)  # (1, H, W) class indices" in multiclass and "RGB input (3 channels)" in multiclass
