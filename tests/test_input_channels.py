"""Models of other input channels than RGB (``in_chans``): greyscale and N-band backbones, whose pretrained RGB stem
timm adapts (and segzoo adapts loaded checkpoints the same way), BiSeNet's spatial path, export, and image
reading / normalisation of greyscale, 16-bit, float and N-band files."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from timm.models import adapt_input_conv

import segzoo
from segzoo import create_model, save_pretrained
from segzoo.config import ModelConfig, default_mean_std
from segzoo.data.base import SegmentationDataset
from segzoo.data.transforms import EvalTransform, TrainTransform
from segzoo.errors import ConfigError, ImageReadError
from segzoo.inference.image_io import display_rgb, image_shape, load_image, to_tensor
from segzoo.model import SegmentationModel
from support.hub_cache import fill_hub_cache

# --- pretrained backbones: timm adapts the RGB stem ------------------------------------------------------------

@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory):
    """Offline Hub cache with made-up "ImageNet" weights of the GluonCV tags pretrained_backbone loads (ResNet-18
    v1b and ResNet-50 v1s, whose deep stem starts with conv1.0); yields {arch: the weights}."""
    import huggingface_hub.constants as hf_constants
    import timm

    cache = tmp_path_factory.mktemp("hub")
    weights = {}
    for seed, arch in enumerate(("resnet18", "resnet50s")):
        torch.manual_seed(100 + seed)
        state = timm.create_model(arch).state_dict()
        weights[arch] = {key: (value + 0.01 * torch.randn_like(value)) if value.is_floating_point() else value
                         for key, value in state.items()}
        fill_hub_cache(cache, f"timm/{arch}.gluon_in1k", weights[arch])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_HUB_CACHE", str(cache))
        patch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
        patch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        yield weights


@pytest.mark.parametrize("name, arch, in_chans, stem", [
    ("fcn_resnet18", "resnet18", 1, "conv1"),
    ("pspnet_resnet50s", "resnet50s", 4, "conv1.0"),  # deep stem: its first conv reads the image
])
def test_pretrained_stem_is_adapted_as_timm_does(imagenet_weights, name, arch, in_chans, stem):
    model = create_model(name, pretrained_backbone=True, in_chans=in_chans, num_classes=3)
    rgb = imagenet_weights[arch]
    loaded = model.backbone.state_dict()
    assert loaded[f"{stem}.weight"].shape[1] == in_chans
    # timm's rule, called here as the independent reference ...
    torch.testing.assert_close(loaded[f"{stem}.weight"], adapt_input_conv(in_chans, rgb[f"{stem}.weight"]),
                               rtol=0, atol=0)
    # ... and by its formula: one channel sums the RGB filters; N repeat them cyclically, scaled by 3 / N
    if in_chans == 1:
        expected = rgb[f"{stem}.weight"].sum(1, keepdim=True)
    else:
        expected = rgb[f"{stem}.weight"][:, [i % 3 for i in range(in_chans)]] * 3 / in_chans
    torch.testing.assert_close(loaded[f"{stem}.weight"], expected)
    assert torch.equal(loaded["layer1.0.conv1.weight"], rgb["layer1.0.conv1.weight"])  # the rest as pretrained
    assert model.input_conv_keys() == [f"backbone.{stem}.weight"]
    assert (model.config.mean, model.config.std) == default_mean_std(in_chans)
    with torch.no_grad():
        assert model(torch.randn(1, in_chans, 48, 40)).shape == (1, 3, 48, 40)


def test_wrong_number_of_channels_is_named():
    model = create_model("fcn_resnet18", in_chans=1, num_classes=2)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, H, W\), normalised greyscale"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="backbone_kwargs may not set in_chans"):
        SegmentationModel(ModelConfig("fcn", "resnet18", 2, backbone_kwargs={"in_chans": 4}))


# --- checkpoints of another in_chans ------------------------------------------------------------------------------

def test_save_load_round_trip_keeps_in_chans(tmp_path):
    torch.manual_seed(0)
    model = create_model("fcn_resnet18", in_chans=1, num_classes=3)
    save_pretrained(model, tmp_path / "grey")
    loaded = create_model(f"local-dir:{tmp_path / 'grey'}")
    assert loaded.config.in_chans == 1 and loaded.config.mean == model.config.mean
    images = torch.randn(2, 1, 40, 56)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


def test_rgb_checkpoint_into_other_in_chans_is_adapted(tmp_path):
    # mmseg-style ResNet-18 v1c: a deep stem (conv1.0 reads the image)
    torch.manual_seed(0)
    deep = SegmentationModel(ModelConfig("fcn", "resnet18", 3, backbone_kwargs={"stem_type": "deep",
                                                                                 "stem_width": 32})).eval()
    save_pretrained(deep, tmp_path / "deep")
    stem = deep.state_dict()["backbone.conv1.0.weight"]
    with pytest.warns(UserWarning, match=re.escape("adapted backbone.conv1.0.weight (3 -> 4 channels)")):
        four = create_model(f"local-dir:{tmp_path / 'deep'}", in_chans=4)
    assert four.config.in_chans == 4 and four.config.mean == default_mean_std(4)[0]
    torch.testing.assert_close(four.state_dict()["backbone.conv1.0.weight"], adapt_input_conv(4, stem), rtol=0, atol=0)
    torch.testing.assert_close(four.state_dict()["backbone.conv1.0.weight"], stem[:, [0, 1, 2, 0]] * 0.75)
    assert torch.equal(four.state_dict()["backbone.conv1.1.weight"], deep.state_dict()["backbone.conv1.1.weight"])
    # checkpoint_path= into a greyscale model: the stem sums the RGB filters, so a grey image through it is the same
    # image as RGB (R = G = B) through the RGB stem
    plain = create_model("fcn_resnet18", num_classes=3).eval()
    save_pretrained(plain, tmp_path / "plain")
    with pytest.warns(UserWarning, match=re.escape("adapted backbone.conv1.weight (3 -> 1 channels)")):
        grey = create_model("fcn_resnet18", num_classes=3, in_chans=1, checkpoint_path=tmp_path / "plain")
    image = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grey.backbone.conv1(image), plain.backbone.conv1(image.expand(1, 3, 32, 32)),
                                   rtol=1e-5, atol=1e-5)


def test_bisenet_spatial_path_reads_in_chans(tmp_path):
    torch.manual_seed(0)
    model = create_model("bisenet_resnet18", output_stride=32, in_chans=4, num_classes=3, aux=True)
    assert model.head.spatial_path.conv1.conv.in_channels == 4
    assert model.input_conv_keys() == ["backbone.conv1.weight", "head.spatial_path.conv1.conv.weight"]
    with torch.no_grad():
        assert model(torch.randn(1, 4, 64, 72)).shape == (1, 3, 64, 72)
        assert [o.shape for o in model.train()(torch.randn(2, 4, 64, 72))] == [(2, 3, 64, 72)] * 3
    rgb = create_model("bisenet_resnet18", output_stride=32, num_classes=3).eval()
    save_pretrained(rgb, tmp_path / "rgb")
    with pytest.warns(UserWarning, match=r"head\.spatial_path\.conv1\.conv\.weight \(3 -> 4 channels\)"):
        adapted = create_model(f"local-dir:{tmp_path / 'rgb'}", in_chans=4)
    spatial = rgb.state_dict()["head.spatial_path.conv1.conv.weight"]
    torch.testing.assert_close(adapted.state_dict()["head.spatial_path.conv1.conv.weight"],
                               adapt_input_conv(4, spatial), rtol=0, atol=0)


IMAGE_HEAD = """
from segzoo.heads.base import SegmentationHead
from torch import nn

class ImageHead(SegmentationHead):
    needs_image = True

    def __init__(self, in_channels, num_classes, align_corners=True):
        super().__init__()
        self.image_conv = nn.Conv2d(3, 8, 3, padding=1)
        self.classifier = nn.Conv2d(in_channels["c4"] + 8, num_classes, 1)

    def forward(self, features, image=None):
        import torch
        import torch.nn.functional as F
        c4 = features["c4"]
        small = F.interpolate(self.image_conv(image), size=c4.shape[-2:], mode="bilinear")
        return self.classifier(torch.cat([c4, small], 1))
"""


def test_image_head_without_in_chans_reads_rgb_only(make_plugin):
    """A third-party head that reads the image but knows nothing of in_chans keeps working on RGB; another
    in_chans is a ConfigError naming it, not a shape error deep inside forward."""
    make_plugin("image-head", "image_head_mod", IMAGE_HEAD, {"imagehead": "image_head_mod:ImageHead"})
    model = create_model("imagehead_resnet18", num_classes=2)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    with pytest.raises(ConfigError, match=r"head 'imagehead' reads the image but takes no in_chans.*in_chans=1"):
        create_model("imagehead_resnet18", num_classes=2, in_chans=1)
    with pytest.raises(ConfigError, match="head_kwargs may not set in_chans"):
        SegmentationModel(ModelConfig("fcn", "resnet18", 2, head_kwargs={"in_chans": 2}))


def test_onnx_export_of_a_4_band_model_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from segzoo.inference.export import check_export

    torch.manual_seed(0)
    model = create_model("fcn_resnet18", in_chans=4, num_classes=3)
    path = segzoo.export(model, tmp_path / "four.onnx", size=(64, 64), check=False)
    results = check_export(path, model, "onnx", sizes=[(2, 48, 40)])
    assert [r.shape for r in results] == [(2, 4, 48, 40)] and all(r.ok for r in results)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(1, 4, 56, 72)
    actual = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: images.numpy()})[0])
    with torch.no_grad():
        expected = model(images)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * max(1.0, expected.abs().max().item()))


def test_flops_and_optimize_use_in_chans():
    from segzoo.inference.optimize import optimize_for_inference
    from segzoo.tools.flops import count_model_flops

    model = create_model("fcn_resnet18", in_chans=1, num_classes=2)
    gflops, _ = count_model_flops(model, (64, 64))
    assert gflops > 0
    fast = optimize_for_inference(model)
    images = torch.randn(1, 1, 40, 48)
    with torch.inference_mode():
        torch.testing.assert_close(fast(images), model(images), rtol=1e-4, atol=1e-4)


# --- reading images ---------------------------------------------------------------------------------------------

def _rng():
    return np.random.default_rng(0)


def test_greyscale_files_for_a_one_band_model(tmp_path):
    grey = _rng().integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    image = load_image(tmp_path / "grey.png", in_chans=1)
    assert image.dtype == np.uint8 and image.shape == (5, 7, 1)
    np.testing.assert_array_equal(image[..., 0], grey)

    deep = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    for name in ("deep.png", "deep.tif"):
        Image.fromarray(deep).save(tmp_path / name)
        assert Image.open(tmp_path / name).mode in ("I;16", "I")
        image = load_image(tmp_path / name, in_chans=1)
        assert image.dtype == np.float32 and image.shape == (1, 4, 1)
        np.testing.assert_allclose(image[..., 0], deep / 65535.0, rtol=1e-6)

    values = np.array([[0.0, 0.25, 1.0, 1.5, -0.5]], dtype=np.float32)  # float TIFFs are used as they are
    Image.fromarray(values).save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "float.tif").mode == "F"
    image = load_image(tmp_path / "float.tif", in_chans=1)
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image[..., 0], values)


def test_colour_files_for_a_one_band_model_are_luminance(tmp_path):
    rgb = _rng().integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    image = load_image(tmp_path / "rgb.png", in_chans=1)
    assert image.dtype == np.uint8 and image.shape == (4, 6, 1)
    np.testing.assert_array_equal(image[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))
    luma = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2
    assert np.abs(image[..., 0] - luma).max() <= 1
    # transparency is composited over white first, as for RGB models
    rgba = np.array([[[200, 100, 0, 0], [200, 100, 0, 255]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png", in_chans=1)[..., 0],
                                  [[255, round(0.299 * 200 + 0.587 * 100)]])


def test_rgba_and_rgb_files_for_three_and_four_band_models(tmp_path):
    rgba = _rng().integers(0, 256, (3, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgbn.png")
    four = load_image(tmp_path / "rgbn.png", in_chans=4)  # the fourth band as stored (e.g. near infrared)
    assert four.dtype == np.uint8
    np.testing.assert_array_equal(four, rgba)
    three = load_image(tmp_path / "rgbn.png", in_chans=3)  # RGB models: alpha composited over white, as before
    alpha = rgba[..., 3:4] / 255.0
    np.testing.assert_array_equal(three, np.clip(np.round(rgba[..., :3] * alpha + 255 * (1 - alpha)), 0, 255))
    grey = _rng().integers(0, 256, (3, 5), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_image(tmp_path / "grey.png"), np.repeat(grey[..., None], 3, axis=2))
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
    with pytest.raises(ImageReadError, match=re.escape(f"image {tmp_path / 'rgb.png'} for a model of in_chans=4: "
                                                       f"it has 3 band(s) (mode RGB)")):
        load_image(tmp_path / "rgb.png", in_chans=4)
    with pytest.raises(ImageReadError, match=r"in_chans=2: it has 1 band\(s\)"):
        load_image(tmp_path / "grey.png", in_chans=2)


def test_npy_bands_are_scaled_by_dtype(tmp_path):
    rng = _rng()
    bands = rng.random((6, 5, 4)).astype(np.float32)
    np.save(tmp_path / "float.npy", bands)
    np.testing.assert_array_equal(load_image(tmp_path / "float.npy", in_chans=4), bands)
    deep = rng.integers(0, 65536, (6, 5, 4), dtype=np.uint16)
    np.save(tmp_path / "deep.npy", deep)
    image = load_image(tmp_path / "deep.npy", in_chans=4)
    assert image.dtype == np.float32
    np.testing.assert_allclose(image, deep / 65535.0, rtol=1e-6)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.npy"), load_image(tmp_path / "rgb.png"))
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.npy", in_chans=1), load_image(tmp_path / "rgb.png",
                                                                                          in_chans=1))
    np.save(tmp_path / "plane.npy", deep[..., 0])  # (H, W): one band
    assert load_image(tmp_path / "plane.npy", in_chans=1).shape == (6, 5, 1)
    assert load_image(tmp_path / "plane.npy", in_chans=3).shape == (6, 5, 3)
    assert image_shape(tmp_path / "deep.npy") == (6, 5)


def test_npy_mismatches_and_bad_dtypes_are_one_line_errors(tmp_path):
    np.save(tmp_path / "four.npy", np.zeros((6, 5, 4), np.float32))
    with pytest.raises(ImageReadError) as err:
        load_image(tmp_path / "four.npy", in_chans=3)
    assert str(err.value) == (f"cannot read image {tmp_path / 'four.npy'} for a model of in_chans=3: it has 4 "
                              f"band(s) (shape (6, 5, 4))")
    np.save(tmp_path / "first.npy", np.zeros((4, 30, 20), np.float32))
    with pytest.raises(ImageReadError, match=r"looks channels-first \(bands, H, W\)"):
        load_image(tmp_path / "first.npy", in_chans=4)
    np.save(tmp_path / "signed.npy", np.zeros((6, 5, 4), np.int16))
    with pytest.raises(ImageReadError, match="must be uint8 .* uint16 .* or float .*, got int16"):
        load_image(tmp_path / "signed.npy", in_chans=4)
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object))
    with pytest.raises(ImageReadError, match=re.escape(str(tmp_path / "objects.npy"))):
        load_image(tmp_path / "objects.npy", in_chans=1)


def test_multi_page_tiff_is_a_band_stack(tmp_path):
    pages = [_rng().integers(0, 256, (4, 6), dtype=np.uint8) + i for i in range(4)]
    images = [Image.fromarray(page) for page in pages]
    images[0].save(tmp_path / "stack.tif", save_all=True, append_images=images[1:])
    np.testing.assert_array_equal(load_image(tmp_path / "stack.tif", in_chans=4), np.stack(pages, axis=-1))
    np.testing.assert_array_equal(load_image(tmp_path / "stack.tif", in_chans=1)[..., 0], pages[0])  # first page


def _write_chunky_tiff(path, array: np.ndarray) -> None:
    """A minimal uncompressed little-endian TIFF of an (H, W, N) uint8 / uint16 array (Pillow writes no such
    file): N samples per pixel, photometric RGB, the samples past the third unspecified extra samples."""
    import struct

    height, width, bands = array.shape
    bits = array.dtype.itemsize * 8
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    bits_at = 8 + len(data)
    extra_at = bits_at + 2 * bands
    ifd_at = extra_at + 2 * max(bands - 3, 1)
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, bands, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8), (277, 3, 1, bands), (278, 4, 1, height), (279, 4, 1, len(data)), (284, 3, 1, 1)]
    if bands > 3:
        entries.append((338, 3, bands - 3, extra_at if bands - 3 > 2 else 0))
    out = b"II*\x00" + struct.pack("<I", ifd_at) + data + struct.pack(f"<{bands}H", *[bits] * bands)
    out += bytes(2 * max(bands - 3, 1)) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        short = kind == 3 and count == 1
        out += struct.pack("<HHIHH" if short else "<HHII", tag, kind, count, *((value, 0) if short else (value,)))
    path.write_bytes(out + struct.pack("<I", 0))


def test_tiffs_pillow_reads_only_in_part_are_refused_for_other_in_chans(tmp_path):
    rng = _rng()
    _write_chunky_tiff(tmp_path / "five.tif", rng.integers(0, 256, (4, 6, 5), dtype=np.uint8))
    _write_chunky_tiff(tmp_path / "deep_rgb.tif", rng.integers(0, 65536, (4, 6, 3), dtype=np.uint16))
    assert Image.open(tmp_path / "five.tif").mode == "RGB"  # Pillow drops two bands ...
    with pytest.raises(ImageReadError, match=r"in_chans=5: it has 5 band\(s\) of 8 bits, which Pillow reads as 3 "
                                             r"8-bit band\(s\) \(mode RGB\); save the bands as \.npy"):
        load_image(tmp_path / "five.tif", in_chans=5)
    with pytest.raises(ImageReadError, match=r"in_chans=1: it has 3 band\(s\) of 16 bits"):  # ... or 8 bits
        load_image(tmp_path / "deep_rgb.tif", in_chans=1)
    assert load_image(tmp_path / "deep_rgb.tif").shape == (4, 6, 3)  # RGB models read them as before
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    _write_chunky_tiff(tmp_path / "rgb.tif", rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.tif"), rgb)


def test_to_tensor_normalises_any_band_count():
    grey = np.array([[0, 255]], dtype=np.uint8)
    torch.testing.assert_close(to_tensor(grey[..., None], (0.5,), (0.25,)), torch.tensor([[[[-2.0, 2.0]]]]))
    bands = np.array([[[0.0, 0.5, 1.0, 0.25]]], dtype=np.float32)  # floats are used as they are
    tensor = to_tensor(bands, (0.5,) * 4, (0.5,) * 4)
    assert tensor.shape == (1, 4, 1, 1)
    torch.testing.assert_close(tensor.flatten(), torch.tensor([-1.0, 0.0, 1.0, -0.5]))
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) image"):
        to_tensor(bands, (0.5,) * 3, (0.5,) * 3)
    assert display_rgb(bands).tolist() == [[[0, 128, 255]]]
    assert display_rgb(grey[..., None]).shape == (1, 2, 3)


def test_transforms_on_n_band_images():
    rng = _rng()
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (30, 40))
    mean, std = default_mean_std(4)
    bands = np.concatenate([rgb / 255.0, rng.random((30, 40, 1))], axis=2).astype(np.float32)
    image, out_mask = EvalTransform(mean=mean, std=std)(bands, mask)
    expected = (torch.from_numpy(bands).permute(2, 0, 1) - torch.tensor(mean)[:, None, None]) \
        / torch.tensor(std)[:, None, None]
    torch.testing.assert_close(image, expected)
    image, out_mask = EvalTransform("val", crop_size=24, mean=mean, std=std)(bands, mask)
    assert image.shape == (4, 24, 24) and out_mask.shape == (24, 24)

    # The float path resizes like Pillow does the RGB uint8 image (up to its 8-bit rounding).
    import random

    for blur in (0.0, 1.0):
        random.seed(3)
        rgb_out, rgb_mask = TrainTransform(32, 24, blur_prob=blur)(rgb, mask)
        random.seed(3)
        four_out, four_mask = TrainTransform(32, 24, blur_prob=blur, mean=mean, std=std)(bands, mask)
        assert four_out.shape == (4, 24, 24) and torch.equal(rgb_mask, four_mask)
        tolerance = 1.0 / 255 / min(std) if blur == 0 else 0.1  # Pillow's blur is an approximate Gaussian
        torch.testing.assert_close(four_out[:3], rgb_out, rtol=0, atol=tolerance)
    grey = rgb[..., 0]
    random.seed(3)
    grey_out, _ = TrainTransform(32, 24, mean=(0.5,), std=(0.25,))(grey[..., None], mask)
    assert grey_out.shape == (1, 24, 24)
    with pytest.raises(ValueError, match=r"expected an \(H, W, 1\) image"):
        EvalTransform(mean=(0.5,), std=(0.25,))(rgb, mask)


def test_dataset_reads_n_band_images(tmp_path):
    rng = _rng()
    bands = rng.random((12, 10, 4)).astype(np.float32)
    np.save(tmp_path / "tile.npy", bands)
    Image.fromarray(rng.integers(0, 2, (12, 10), dtype=np.uint8)).save(tmp_path / "tile.png")

    class Tiles(SegmentationDataset):
        name, num_classes = "tiles", 2

    dataset = Tiles([(tmp_path / "tile.npy", tmp_path / "tile.png")], "train", in_chans=4)
    image, _ = dataset.load(0)
    np.testing.assert_array_equal(image, bands)
    tensor, mask = dataset[0]  # the default transform normalises with default_mean_std(4)
    mean, std = default_mean_std(4)
    torch.testing.assert_close(tensor[3], (torch.from_numpy(bands[..., 3]) - mean[3]) / std[3])
    dataset.check()
    with pytest.raises(ImageReadError, match="in_chans=3: it has 4 band"):
        Tiles([(tmp_path / "tile.npy", tmp_path / "tile.png")], "train").load(0)


# --- predict ------------------------------------------------------------------------------------------------------

def test_predict_a_greyscale_png_with_a_one_band_model(tmp_path):
    Image.fromarray(_rng().integers(0, 256, (30, 44), dtype=np.uint8)).save(tmp_path / "grey.png")
    model = create_model("fcn_resnet18", in_chans=1, num_classes=2)
    results = segzoo.predict(tmp_path / "grey.png", model, out_dir=tmp_path / "out", progress=False)
    assert results[0].ok and results[0].mask.shape == (30, 44)
    assert (tmp_path / "out" / "grey_mask.png").is_file() and (tmp_path / "out" / "grey_overlay.png").is_file()
