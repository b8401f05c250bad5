"""Running a model as its upstream evaluated it (``config.inference``): mmseg's test resize and sliding windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import segzoo
from segzoo import ConfigError, ModelConfig
from segzoo.inference import predict_logits
from segzoo.inference.predict import predict
from segzoo.inference.tta import fit_within, recipe_options


class Recorder(nn.Module):
    """A model whose logits are a fixed linear map of the input, recording the size of every call."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.calls: list[tuple[int, int]] = []
        self.mix = nn.Conv2d(3, config.num_classes, 1)

    def forward(self, images):
        self.calls.append(tuple(images.shape[-2:]))
        return self.mix(images)


def test_fit_within_is_mmsegs_keep_ratio_resize():
    assert fit_within(1024, 2048, (2048, 1024)) == (1024, 2048)  # Cityscapes stays as it is
    assert fit_within(1024, 2048, (2049, 1025)) == (1025, 2049)  # the 769x769 models' test size
    assert fit_within(375, 500, (2048, 512)) == (512, 683)  # a VOC / ADE20K image: short side 512
    assert fit_within(400, 3000, (2048, 512)) == (273, 2048)  # a panorama: the long side bounds it


def test_recipe_options_and_their_validation():
    config = ModelConfig("fcn", "resnet18", 3, inference={"resize": [2049, 1025], "mode": "slide",
                                                          "crop": [769, 769], "stride": [513, 513]})
    assert recipe_options(config) == {"resize": (2049, 1025), "window": (769, 769), "stride": (513, 513)}
    assert ModelConfig.from_json(config.to_json()) == config
    assert recipe_options(ModelConfig("fcn", "resnet18", 3)) == {}
    for bad, message in (({"mode": "slide"}, "needs 'crop' and 'stride'"), ({"mode": "tile"}, "'whole' or 'slide'"),
                         ({"resize": (0, 5)}, "two integers >= 1"), ({"size": 3}, "unknown key")):
        with pytest.raises(ConfigError, match=message):
            ModelConfig("fcn", "resnet18", 3, inference=bad)


def test_resize_then_windows_as_mmseg_places_them():
    """A 1024x2048 Cityscapes image with the 769x769 recipe: rescaled to 1025x2049, 2 x 4 windows of 769 (mmseg's
    grid: every 513 pixels, the last flush with the edge), logits back at 1024x2048."""
    config = ModelConfig("fcn", "resnet18", 2, align_corners=True, inference={
        "resize": (2049, 1025), "mode": "slide", "crop": (769, 769), "stride": (513, 513)})
    model = Recorder(config).eval()
    images = torch.randn(1, 3, 1024, 2048)
    logits = predict_logits(model, images, **recipe_options(config))
    assert logits.shape == (1, 2, 1024, 2048) and model.calls == [(769, 769)] * 8
    # the same numbers by hand: the whole rescaled image (a 1x1 map is the same window by window), resized back
    resized = F.interpolate(images, (1025, 2049), mode="bilinear", align_corners=False)
    expected = F.interpolate(model.mix(resized), (1024, 2048), mode="bilinear", align_corners=True)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_predict_follows_the_recipe_unless_told_not_to(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    config = ModelConfig("fcn", "resnet18", 2, inference={"resize": (45, 30), "mode": "slide", "crop": (16, 16),
                                                          "stride": (12, 12)})
    model = Recorder(config)
    result = predict(tmp_path / "a.png", model, progress=False)[0]
    # rescaled to 30x45; windows at rows 0, 12, 14 and columns 0, 12, 24, 29 (mmseg's grid: 3 x 4)
    assert result.mask.shape == (60, 90) and model.calls == [(16, 16)] * 12
    model.calls.clear()
    predict(tmp_path / "a.png", model, progress=False, recipe=False)
    assert model.calls == [(60, 90)]


def test_mmseg_entries_predict_at_their_test_size(tmp_path):
    """A real entry's config (ADE20K: short side 512) on the meta device: the model sees the rescaled image."""
    entry = segzoo.get_pretrained("fcn_resnet50c_d8.mmseg_ade20k")
    model = Recorder(entry.config).eval()
    predict_logits(model, torch.randn(1, 3, 375, 500), **recipe_options(entry.config))
    assert model.calls == [(512, 683)]
