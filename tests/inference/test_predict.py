"""``segzoo predict`` and its helpers: image reading, palettes, test-time inference, the command itself."""
from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import segzoo
from segzoo.errors import ImageReadError, SegzooError
from segzoo.inference import colorize, overlay, predict_logits, sliding_window_logits, window_starts
from segzoo.inference.image_io import load_image, to_tensor
from segzoo.inference.optimize import FusedConv2d, is_optimized_for_inference
from segzoo.testing import randomize_batch_norm
from segzoo.tools.cli import _build_parser, main
from segzoo.zoo import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    VOC_CLASSES,
    ade20k_palette,
    cityscapes_palette,
    generic_palette,
    palette_for,
    voc_palette,
)

SEGZOO = str(Path(sysconfig.get_path("scripts")) / "segzoo")
ORIENTATION = 0x0112  # EXIF tag; 6 = stored rotated, display turned 90 degrees clockwise


def _rng():
    return np.random.default_rng(0)


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif


@pytest.fixture
def image_folder(tmp_path):
    """One file of each kind; returns (folder, {name: expected (width, height)})."""
    rng = _rng()
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    # Stored 64 wide x 40 high, EXIF orientation 6: seen (and segmented) 40 wide x 64 high.
    Image.fromarray(rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)).save(folder / "photo.jpg", exif=_exif(6))
    Image.fromarray(rng.integers(0, 256, (30, 50), dtype=np.uint8)).save(folder / "grey.png")
    Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(folder / "sub" / "same_size.png")
    Image.fromarray(rng.integers(0, 256, (36, 28, 4), dtype=np.uint8)).save(folder / "rgba.png")
    indexed = Image.frombytes("P", (32, 24), rng.integers(0, 4, 24 * 32, dtype=np.uint8).tobytes())
    indexed.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0] + [0] * 756)
    indexed.save(folder / "indexed.png")
    Image.fromarray(rng.integers(0, 65536, (20, 44), dtype=np.uint16)).save(folder / "deep.png")
    (folder / "corrupt.jpg").write_bytes(rng.bytes(2000))
    (folder / "notes.txt").write_text("not an image, and not an image extension: ignored")
    sizes = {"photo": (40, 64), "grey": (50, 30), "sub/same_size": (50, 30), "rgba": (28, 36), "indexed": (32, 24),
             "deep": (44, 20)}
    return folder, sizes


def _run_cli(*args):
    return subprocess.run([SEGZOO, "predict", *map(str, args)], capture_output=True, text=True, timeout=300)


# --- the command, end to end ------------------------------------------------------------------------------------

def test_predict_command_writes_masks_overlays_and_arrays(image_folder, tmp_path):
    folder, sizes = image_folder
    out = tmp_path / "out"
    proc = _run_cli(folder, "--model", "fcn_resnet18", "--num-classes", "21", "--out", out, "--npy",
                    "--batch-size", "2", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "6 written, 1 skipped" in proc.stdout
    assert "corrupt.jpg" in proc.stderr and "skipped" in proc.stderr
    assert not list(out.glob("corrupt*"))
    for stem, size in sizes.items():
        mask = Image.open(out / f"{stem}_mask.png")
        assert mask.mode == "P" and mask.size == size, stem
        assert mask.getpalette()[3:6] == [128, 0, 0]  # the VOC palette
        indices = np.asarray(mask)
        assert indices.max() < 21
        array = np.load(out / f"{stem}.npy")
        assert array.dtype == np.uint8 and np.array_equal(array, indices), stem
        overlay_image = Image.open(out / f"{stem}_overlay.png")
        assert overlay_image.mode == "RGB" and overlay_image.size == size
    assert Image.open(out / "photo_mask.png").size == (40, 64)  # the upright size, not the stored 64 x 40


def test_predict_command_sliding_window_and_test_time_augmentation(image_folder, tmp_path):
    folder, sizes = image_folder
    config = segzoo.create_model("fcn_resnet18").config.replace(input_size=(32, 32))
    segzoo.save_pretrained(segzoo.SegmentationModel(config).eval(), tmp_path / "small-window")
    out = tmp_path / "out"
    proc = _run_cli(folder / "photo.jpg", folder / "deep.png", "--model", f"local-dir:{tmp_path / 'small-window'}",
                    "--out", out, "--max-size", "40", "--flip", "--scales", "1.0", "0.75", "--no-overlay")
    assert proc.returncode == 0, proc.stderr
    assert "2 written, 0 skipped" in proc.stdout
    for stem in ("photo", "deep"):
        mask = Image.open(out / f"{stem}_mask.png")
        assert mask.size == sizes[stem] and np.asarray(mask).max() < 21
        assert not (out / f"{stem}_overlay.png").exists() and not (out / f"{stem}.npy").exists()


def test_predict_help_explains_every_option():
    parser = _build_parser()
    predict_parser = parser._subparsers._group_actions[0].choices["predict"]
    options = [action for action in predict_parser._actions if action.dest != "help"]
    assert {"images", "model", "out", "npy", "overlay", "max_size", "scales", "flip", "batch_size", "device", "half",
            "num_classes"} <= {action.dest for action in options}
    for action in options:
        assert action.help and len(action.help) > 20, action.dest


def test_predict_command_exit_status_and_half_on_cpu(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    assert main(["predict", str(bad), "--model", "fcn_resnet18", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "0 written, 1 skipped" in captured.out and "bad.png" in captured.err

    assert main(["predict", str(bad), "--model", "fcn_resnet18", "--device", "cpu", "--half"]) == 1
    assert "half precision runs on a CUDA GPU only" in capsys.readouterr().err


# --- predict(), in process --------------------------------------------------------------------------------------

@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    config = segzoo.create_model("fcn_resnet18").config.replace(input_size=(24, 24))
    return segzoo.SegmentationModel(config).eval()


def _record_inputs(model):
    shapes = []
    model.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    return shapes


def test_predict_batches_images_of_one_size_and_keeps_input_order(image_folder, tiny_model, tmp_path):
    folder, _ = image_folder
    shapes = _record_inputs(tiny_model)
    inputs = [folder / "grey.png", folder / "rgba.png", folder / "sub" / "same_size.png", tmp_path / "missing.png"]
    results = segzoo.predict(inputs, tiny_model, batch_size=2, device="cpu", progress=False)
    assert [r.path for r in results] == inputs
    assert [r.ok for r in results] == [True, True, True, False]
    assert "no such file" in results[3].error
    assert sorted(shapes) == [(1, 3, 36, 28), (2, 3, 30, 50)]  # the two 50 x 30 images ran as one batch
    assert results[0].mask.shape == (30, 50) and results[1].mask.shape == (36, 28)
    assert results[0].files == ()  # no out_dir: nothing written


def test_predict_sliding_window_above_max_size(image_folder, tiny_model):
    folder, _ = image_folder
    shapes = _record_inputs(tiny_model)
    (result,) = segzoo.predict(folder / "photo.jpg", tiny_model, max_size=40, device="cpu", progress=False)
    assert result.mask.shape == (64, 40)
    # 40 wide x 64 high in 24 x 24 windows at stride 16: 4 rows (0, 16, 32, 40) x 2 columns (0, 16).
    assert shapes == [(1, 3, 24, 24)] * 8
    shapes.clear()
    segzoo.predict(folder / "photo.jpg", tiny_model, max_size=64, device="cpu", progress=False)
    assert shapes == [(1, 3, 64, 40)]  # not above max_size: whole


def test_a_model_named_is_optimized_for_inference_a_model_passed_in_is_not(image_folder, tiny_model, tmp_path,
                                                                          monkeypatch, native_bf16):
    folder, _ = image_folder
    segzoo.save_pretrained(randomize_batch_norm(tiny_model), tmp_path / "saved")
    fused_calls = []
    forward = FusedConv2d.forward
    monkeypatch.setattr(FusedConv2d, "forward", lambda self, x: fused_calls.append(1) or forward(self, x))
    inputs = [folder / "grey.png", folder / "rgba.png"]
    by_name = segzoo.predict(inputs, f"local-dir:{tmp_path / 'saved'}", device="cpu", progress=False)
    # every convolution of fcn_resnet18: the check on the example, 2 images (too few to measure bf16, where native)
    assert len(fused_calls) == 3 * 22
    by_object = segzoo.predict(inputs, tiny_model, device="cpu", progress=False)
    assert len(fused_calls) == 3 * 22 and not is_optimized_for_inference(tiny_model)
    for named, passed in zip(by_name, by_object):
        assert np.array_equal(named.mask, passed.mask)


def test_predict_half_refused_on_cpu(tiny_model, image_folder):
    with pytest.raises(SegzooError, match="CUDA"):
        segzoo.predict(image_folder[0], tiny_model, device="cpu", half=True)


def test_predict_skips_its_own_outputs_and_disambiguates_names(tmp_path, tiny_model):
    folder = tmp_path / "in"
    folder.mkdir()
    for suffix in (".png", ".bmp"):
        Image.new("RGB", (20, 16), (10, 20, 30)).save(folder / f"same{suffix}")
    out = folder / "masks"  # inside the input folder
    first = segzoo.predict(folder, tiny_model, out_dir=out, device="cpu", progress=False, keep_masks=False)
    assert [r.ok for r in first] == [True, True] and first[0].mask is None
    # same.bmp comes first (sorted), same.png gets its extension in its output names
    assert {p.name for p in out.iterdir()} == {"same_mask.png", "same_overlay.png", "same_png_mask.png",
                                               "same_png_overlay.png"}
    again = segzoo.predict(folder, tiny_model, out_dir=out, device="cpu", progress=False)
    assert len(again) == 2  # the masks written the first time are not inputs


# --- inference.py ---------------------------------------------------------------------------------------------

class WindowStatistic(nn.Module):
    """A toy 'model' that is not translation invariant: a 1x1 map of each pixel plus the window's mean."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.weight = torch.randn(4, 3, dtype=torch.float64)

    def forward(self, x):
        return torch.einsum("kc,nchw->nkhw", self.weight, x) + x.mean(dim=(1, 2, 3))[:, None, None, None]


def _numpy_window_average(x: np.ndarray, weight: np.ndarray, window, tops, lefts) -> np.ndarray:
    """The overlap average computed independently: explicit window offsets, a sum and a count per pixel."""
    n, _, height, width = x.shape
    padded = np.zeros((n, 3, max(height, window[0]), max(width, window[1])))
    padded[:, :, :height, :width] = x
    total = np.zeros((n, weight.shape[0]) + padded.shape[2:])
    count = np.zeros(padded.shape[2:])
    for top in tops:
        for left in lefts:
            crop = padded[:, :, top:top + window[0], left:left + window[1]]
            logits = np.einsum("kc,nchw->nkhw", weight, crop) + crop.mean(axis=(1, 2, 3))[:, None, None, None]
            total[:, :, top:top + window[0], left:left + window[1]] += logits
            count[top:top + window[0], left:left + window[1]] += 1
    assert count.min() >= 1
    return (total / count)[:, :, :height, :width]


def test_window_starts_cover_the_axis():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 3) == [0]
    assert window_starts(24, 16, 10) == [0, 8]


@pytest.mark.parametrize("window, stride, tops, lefts", [
    ((8, 12), (3, 5), [0, 3, 6, 9, 11], [0, 5, 10, 15, 17]),  # stride < window: overlaps of 1 to 3 windows
    ((8, 12), None, [0, 5, 10, 11], [0, 8, 16, 17]),            # default stride: 2/3 of the window
    ((24, 12), (3, 5), [0], [0, 5, 10, 15, 17]),               # taller than the image: zero padding below
])
def test_sliding_window_matches_an_independent_overlap_average(window, stride, tops, lefts):
    x = torch.randn(2, 3, 19, 29, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = WindowStatistic()
    got = sliding_window_logits(model, x, window, stride)
    expected = _numpy_window_average(x.numpy(), model.weight.numpy(), window, tops, lefts)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert predict_logits(model, x, window=window, stride=stride).shape == (2, 4, 19, 29)


def test_sliding_window_of_a_pointwise_model_equals_plain_inference():
    conv = nn.Conv2d(3, 5, 1).double()
    x = torch.randn(1, 3, 37, 53, dtype=torch.float64)
    with torch.no_grad():
        plain = conv(x)
        for window, stride in [(16, None), (16, 5), ((48, 20), 7), (9, 1)]:
            windowed = predict_logits(conv, x, window=window, stride=stride)
            torch.testing.assert_close(windowed, plain, rtol=1e-12, atol=1e-12)


def test_window_at_least_the_image_is_plain_inference(tiny_model):
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        plain = tiny_model(x)
    assert torch.equal(predict_logits(tiny_model, x, window=(40, 56)), plain)
    assert torch.equal(predict_logits(tiny_model, x, window=(64, 64)), plain)
    assert torch.equal(predict_logits(tiny_model, x), plain)
    assert torch.equal(predict_logits(tiny_model, x, scales=(1.0,)), plain)


def _conv3x3(symmetric: bool) -> nn.Conv2d:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        if symmetric:  # mirror-symmetric kernels: conv(flip(x)) == flip(conv(x))
            conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    return conv


def test_flip_averaging():
    x = torch.randn(2, 3, 15, 22)
    symmetric = _conv3x3(symmetric=True)
    torch.testing.assert_close(predict_logits(symmetric, x, flip=True), predict_logits(symmetric, x))
    asymmetric = _conv3x3(symmetric=False)
    with torch.no_grad():
        expected = (asymmetric(x) + asymmetric(x.flip(-1)).flip(-1)) / 2
    torch.testing.assert_close(predict_logits(asymmetric, x, flip=True), expected)


def test_multi_scale_averages_logits_resized_back():
    conv = _conv3x3(symmetric=False)
    x = torch.randn(1, 3, 20, 30)
    with torch.no_grad():
        half = F.interpolate(conv(F.interpolate(x, size=(10, 15), mode="bilinear", align_corners=False)),
                             size=(20, 30), mode="bilinear", align_corners=False)
        expected = (conv(x) + half) / 2
        assert torch.equal(predict_logits(conv, x, scales=(1.0,)), conv(x))
    torch.testing.assert_close(predict_logits(conv, x, scales=(1.0, 0.5)), expected)
    with pytest.raises(ValueError, match="scales"):
        predict_logits(conv, x, scales=())


# --- image_io.py ------------------------------------------------------------------------------------------------

def test_load_image_applies_exif_orientation(tmp_path):
    pixels = _rng().integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=_exif(6))
    np.testing.assert_array_equal(load_image(tmp_path / "turned.png"), np.rot90(pixels, k=-1))
    Image.fromarray(pixels).save(tmp_path / "turned.jpg", exif=_exif(6))
    assert load_image(tmp_path / "turned.jpg").shape == (6, 4, 3)


def test_load_image_greyscale_and_bilevel(tmp_path):
    grey = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgb = load_image(tmp_path / "grey.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3) and rgb.flags.writeable
    assert all(np.array_equal(rgb[..., c], grey) for c in range(3))
    Image.fromarray(grey).convert("1").save(tmp_path / "bits.png")
    np.testing.assert_array_equal(load_image(tmp_path / "bits.png")[..., 0], [[0, 0], [255, 255]])


def test_load_image_composites_alpha_over_white(tmp_path):
    rgba = np.array([[[200, 100, 0, 255], [200, 100, 0, 0], [200, 100, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    expected = [[[200, 100, 0], [255, 255, 255], [np.round(200 * 128 / 255 + 255 * 127 / 255),
                                                  np.round(100 * 128 / 255 + 255 * 127 / 255), 127]]]
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), expected)
    la = Image.merge("LA", [Image.fromarray(rgba[..., 0]), Image.fromarray(rgba[..., 3])])
    la.save(tmp_path / "la.png")
    # the half-transparent pixel: round(200 * 128/255 + 255 * 127/255) = 227
    np.testing.assert_array_equal(load_image(tmp_path / "la.png")[..., 1], [[200, 255, 227]])


def test_load_image_palette_with_and_without_transparency(tmp_path):
    indexed = Image.frombytes("P", (3, 1), bytes([0, 1, 2]))
    indexed.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    indexed.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"), [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]])
    indexed.save(tmp_path / "p_transparent.png", transparency=1)
    np.testing.assert_array_equal(load_image(tmp_path / "p_transparent.png"),
                                  [[[255, 0, 0], [255, 255, 255], [0, 0, 255]]])


def test_load_image_scales_16_bit_instead_of_clipping(tmp_path):
    deep = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode in ("I;16", "I")
    np.testing.assert_array_equal(load_image(tmp_path / "deep.png")[..., 0], [[0, 1, 128, 255]])
    Image.fromarray(deep.astype(np.int32)).save(tmp_path / "deep32.tif")  # mode I
    np.testing.assert_array_equal(load_image(tmp_path / "deep32.tif")[..., 2], [[0, 1, 128, 255]])
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "float.tif")  # mode F
    np.testing.assert_array_equal(load_image(tmp_path / "float.tif")[..., 0], [[0, 128, 255]])


def test_load_image_cmyk(tmp_path):
    Image.new("CMYK", (3, 2), (0, 255, 0, 0)).save(tmp_path / "cmyk.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "cmyk.tif")[0, 0], [255, 0, 255])


def test_load_image_errors_name_the_file(tmp_path):
    (tmp_path / "random.jpg").write_bytes(_rng().bytes(500))
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    for name in ("random.jpg", "truncated.jpg", "missing.png"):
        with pytest.raises(ImageReadError, match=name):
            load_image(tmp_path / name)
    assert issubclass(ImageReadError, SegzooError)


def test_to_tensor_normalises():
    rgb = np.full((2, 3, 3), 255, dtype=np.uint8)
    rgb[0, 0] = (0, 51, 102)
    tensor = to_tensor(rgb, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    assert tensor.shape == (1, 3, 2, 3) and tensor.dtype == torch.float32
    torch.testing.assert_close(tensor[0, :, 0, 0], torch.tensor([-1.0, -1.2, -0.2]))
    torch.testing.assert_close(tensor[0, :, 1, 2], torch.tensor([1.0, 2.0, 1.0]))


# --- palettes.py ----------------------------------------------------------------------------------------------

def test_dataset_palettes():
    voc = voc_palette()
    assert voc.shape == (256, 3) and voc.dtype == np.uint8
    assert voc[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert voc[15].tolist() == [192, 128, 128]  # person
    assert voc[255].tolist() == [224, 224, 192]  # boundary
    citys = cityscapes_palette()
    assert citys[0].tolist() == [128, 64, 128] and citys[1].tolist() == [244, 35, 232]
    assert citys[10].tolist() == [70, 130, 180] and citys[18].tolist() == [119, 11, 32]
    ade = ade20k_palette()
    assert len({tuple(c) for c in ade[:150]}) == 150 and ade[:150].sum(axis=1).min() > 0
    assert len({tuple(c) for c in generic_palette(1000)}) == 1000


def test_palette_for_picks_by_class_names_or_count():
    config = segzoo.create_model("fcn_resnet18").config
    assert np.array_equal(palette_for(config), voc_palette())
    assert np.array_equal(palette_for(config.replace(class_names=VOC_CLASSES)), voc_palette())
    assert np.array_equal(palette_for(config.replace(num_classes=19)), cityscapes_palette())
    assert np.array_equal(palette_for(config.replace(num_classes=19, class_names=CITYSCAPES_CLASSES)),
                          cityscapes_palette())
    assert np.array_equal(palette_for(config.replace(num_classes=150, class_names=ADE20K_CLASSES)), ade20k_palette())
    custom = tuple(f"class{i}" for i in range(19))
    assert np.array_equal(palette_for(config.replace(num_classes=19, class_names=custom)), generic_palette(19))
    assert len(palette_for(config.replace(num_classes=300))) == 300


def test_colorize_and_overlay():
    labels = np.array([[0, 1], [15, 255]], dtype=np.uint8)
    image = colorize(labels, voc_palette())
    assert image.mode == "P" and image.size == (2, 2)
    assert np.array_equal(np.asarray(image), labels) and image.getpalette()[3:6] == [128, 0, 0]
    rgb = np.full((2, 2, 3), 100, dtype=np.uint8)
    blended = overlay(rgb, labels, voc_palette(), alpha=0.5)
    assert blended.dtype == np.uint8
    assert blended[0, 1].tolist() == [114, 50, 50]  # (100 + 128) / 2, (100 + 0) / 2
    assert np.array_equal(overlay(rgb, labels, voc_palette(), alpha=0.0), rgb)
    with pytest.raises(ValueError, match="class indices"):
        colorize(np.array([[300]]), generic_palette(400))


def test_a_multilabel_overlay_has_a_legend(tmp_path):
    """Nobody could tell which colour was which label: a strip of named swatches sits below the picture."""
    from segzoo.inference import overlay_labels

    rgb = np.full((40, 60, 3), 100, dtype=np.uint8)
    masks = np.zeros((3, 40, 60), dtype=np.uint8)
    masks[0, :10], masks[2, 30:] = 1, 1
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    plain = overlay_labels(rgb, masks, colours)
    with_legend = overlay_labels(rgb, masks, colours, names=["water", "road", "roof"])
    assert plain.shape == (40, 60, 3) and np.array_equal(with_legend[:40], plain)
    strip = with_legend[40:]
    assert strip.shape[0] > 12 and strip.shape[1] == 60  # three names in 60 pixels: wrapped onto several rows
    for colour in colours:
        assert (strip == colour).all(-1).sum() >= 10 * 10, colour  # each label's swatch
    assert (strip == 0).all(-1).any()  # black: the names and the swatches' outlines

    model = segzoo.create_model("fcn_test_resnet.r160_in1k", num_classes=3, mode="multilabel")
    model.config = model.config.replace(class_names=("water", "road", "roof"))
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    segzoo.predict(tmp_path / "photo.png", model, out_dir=tmp_path / "out", progress=False)
    written = np.asarray(Image.open(tmp_path / "out" / "photo_overlay.png"))
    assert written.shape[0] > 40 and written.shape[1] == 60
