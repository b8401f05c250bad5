"""mmsegmentation's dataset layouts (Pascal Context, COCO-Stuff, LoveDA, Potsdam, Vaihingen, iSAID): tiny fake
trees made here, their label mappings, and the errors that name the problem and sketch the expected layout."""
from __future__ import annotations

import contextlib
import importlib.util
import re
import sys

import numpy as np
import pytest
from PIL import Image

from segzoo.data import (
    DATASET_DEFAULTS,
    COCOStuff10kSegmentation,
    EvalTransform,
    ISAIDSegmentation,
    PascalContext59Segmentation,
    PascalContextSegmentation,
    TrainTransform,
    create_dataset,
    list_datasets,
)
from segzoo.errors import DatasetError
from segzoo.zoo.datasets import DATASETS
from support.scripts import EXAMPLES

H, W = 12, 16
NEW_NAMES = ("context", "context59", "coco_stuff164k", "coco_stuff10k", "loveda", "potsdam", "vaihingen", "isaid")
ZOO_KEYS = {"context": "mmseg_context", "context59": "mmseg_context59", "coco_stuff164k": "mmseg_coco_stuff164k",
            "coco_stuff10k": "mmseg_coco_stuff10k", "loveda": "mmseg_loveda", "potsdam": "mmseg_potsdam",
            "vaihingen": "mmseg_vaihingen", "isaid": "mmseg_isaid"}


# ----------------------------------------------------------------------------------------------- tree builders
def _save_rgb(path, seed, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, format=fmt)


def _expected(values):
    """The labels of a mask whose columns cycle through ``values``."""
    return np.asarray(values)[np.arange(W) % len(values)][None, :].repeat(H, axis=0)


def _save_mask(path, values, mode="L"):
    """A mask whose columns cycle through ``values``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(_expected(values).astype(np.uint8), mode=mode)
    if mode == "P":  # palette indices are the labels; the colours deliberately differ from them
        image.putpalette([(i * 37) % 256 for i in range(768)])
    image.save(path)


CONTEXT_VALUES = [0, 1, 59, 255]


def make_context(root, nested=("VOCdevkit", "VOC2010")):
    voc = root.joinpath(*nested)
    ids = {"train": ["2008_000002", "2008_000003"], "val": ["2008_000007"]}
    sets = voc / "ImageSets" / "SegmentationContext"
    sets.mkdir(parents=True)
    for split, names in ids.items():
        for k, i in enumerate(names):
            _save_rgb(voc / "JPEGImages" / f"{i}.jpg", k)
            _save_mask(voc / "SegmentationClassContext" / f"{i}.png", CONTEXT_VALUES)
        (sets / f"{split}.txt").write_text("\n".join(reversed(names)) + "\n\n")
    _save_rgb(voc / "JPEGImages" / "2008_000099.jpg", 9)  # in no list: not read
    return voc


def make_coco(root, version="164k"):
    coco = root / f"coco_stuff{version}"
    folders = {"164k": ("train2017", "val2017"), "10k": ("train2014", "test2014")}[version]
    values = [0, 170, 255] if version == "164k" else [0, 1, 171]
    for folder, n in zip(folders, (2, 1)):
        for k in range(n):
            stem = f"{folder}_{k:06d}"
            _save_rgb(coco / "images" / folder / f"{stem}.jpg", k)
            _save_mask(coco / "annotations" / folder / f"{stem}_labelTrainIds.png", values)
            _save_mask(coco / "annotations" / folder / f"{stem}.png", [182])  # the original map: not read
    return coco


def make_aerial(root, name):
    folder = {"loveda": "loveDA", "potsdam": "potsdam", "vaihingen": "vaihingen", "isaid": "iSAID"}[name]
    values = {"loveda": [0, 1, 7], "potsdam": [0, 1, 6], "vaihingen": [0, 1, 6], "isaid": [0, 15, 255]}[name]
    data = root / folder
    for split, n in (("train", 2), ("val", 1)):
        for k in range(n):
            stem = f"{k}_0_0_{W}_{H}"
            # iSAID's converter writes BMP data under a .png name; the reader goes by content.
            _save_rgb(data / "img_dir" / split / f"{stem}.png", k, fmt="BMP" if name == "isaid" else None)
            suffix = "_instance_color_RGB.png" if name == "isaid" else ".png"
            _save_mask(data / "ann_dir" / split / f"{stem}{suffix}", values, mode="P" if name == "isaid" else "L")
    return data


def make(root, name):
    if name.startswith("context"):
        return make_context(root)
    if name.startswith("coco_stuff"):
        return make_coco(root, name[len("coco_stuff"):])
    return make_aerial(root, name)


# ----------------------------------------------------------------------------------------- every dataset
@pytest.mark.parametrize("name", NEW_NAMES)
def test_sizes_classes_and_defaults(tmp_path, name):
    make(tmp_path, name)
    train = create_dataset(name, tmp_path, split="train")
    val = create_dataset(name, tmp_path, split="val")  # examples/evaluate.py's default split
    assert (len(train), len(val), train.name) == (2, 1, name)
    zoo = DATASETS[ZOO_KEYS[name]]
    assert train.class_names == zoo.class_names and train.num_classes == len(zoo.class_names)
    assert train.num_classes == {"context": 60, "context59": 59, "coco_stuff164k": 171, "coco_stuff10k": 171,
                                 "loveda": 7, "potsdam": 6, "vaihingen": 6, "isaid": 16}[name]
    crop = {"context": 480, "context59": 480, "isaid": 896}.get(name, 512)
    assert DATASET_DEFAULTS[name]["crop_size"] == crop
    assert isinstance(train.transform, TrainTransform) and train.transform.crop_size == (crop, crop)
    assert isinstance(val.transform, EvalTransform)
    image, mask = val[0]
    assert image.shape == (3, H, W) and mask.shape == (H, W)
    assert name in list_datasets()


@pytest.mark.parametrize(("name", "expected"), [
    ("context", [0, 1, 59, 255]),           # 60 classes: as stored, 0 = background is a class
    ("context59", [255, 0, 58, 255]),       # reduce_zero_label: background ignored, the rest shifted down
    ("coco_stuff164k", [0, 170, 255]),      # trainIds as stored
    ("coco_stuff10k", [255, 0, 170]),       # reduce_zero_label
    ("loveda", [255, 0, 6]),
    ("potsdam", [255, 0, 5]),
    ("vaihingen", [255, 0, 5]),
    ("isaid", [0, 15, 255]),                # palette indices as stored, 255 = padding
])
def test_label_mapping(tmp_path, name, expected):
    make(tmp_path, name)
    rgb, mask = create_dataset(name, tmp_path, split="train").load(0)
    assert rgb.shape == (H, W, 3) and mask.dtype == np.int64
    np.testing.assert_array_equal(mask, _expected(expected))


@pytest.mark.parametrize(("name", "bad", "allowed"), [
    ("context", 60, "0..59"), ("context59", 60, "0..58"), ("coco_stuff164k", 171, "0..170"),
    ("coco_stuff10k", 172, "0..170"), ("loveda", 8, "0..6"), ("potsdam", 7, "0..5"), ("vaihingen", 7, "0..5"),
    ("isaid", 16, "0..15"),
])
def test_out_of_range_label_names_file_and_value(tmp_path, name, bad, allowed):
    make(tmp_path, name)
    ds = create_dataset(name, tmp_path, split="val")
    mask = ds.files[0][1]
    _save_mask(mask, [1, bad])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(mask))} holds values {bad} .* {allowed} or be 255"):
        ds.load(0)


@pytest.mark.parametrize("name", NEW_NAMES)
def test_missing_mask_and_unknown_split(tmp_path, name):
    make(tmp_path, name)
    mask = create_dataset(name, tmp_path, split="train").files[1][1]
    mask.unlink()
    with pytest.raises(DatasetError, match=rf"1 listed file\(s\) missing:\n    {re.escape(str(mask))}"):
        create_dataset(name, tmp_path, split="train")
    with pytest.raises(DatasetError, match=r"unknown .* split 'training'; valid splits: train, "):
        create_dataset(name, tmp_path, split="training")


@pytest.mark.parametrize(("name", "missing", "sketch"), [
    ("coco_stuff164k", "images/val2017", "annotations/val2017/<id>_labelTrainIds.png"),
    ("coco_stuff10k", "images/test2014", "annotations/test2014/<id>_labelTrainIds.png"),
    ("loveda", "img_dir/val", "ann_dir/{train,val}/<name>.png"),
    ("potsdam", "img_dir/val", "tools/dataset_converters/potsdam.py"),
    ("vaihingen", "img_dir/val", "tools/dataset_converters/vaihingen.py"),
    ("isaid", "img_dir/val", "ann_dir/{train,val}/<name>_instance_color_RGB.png"),
])
def test_missing_folder_sketches_layout(tmp_path, name, missing, sketch):
    data = make(tmp_path, name)
    for path in sorted((data / missing).iterdir()):
        path.unlink()
    with pytest.raises(DatasetError, match=r"no \*\.(jpg|png) images in ") as err:
        create_dataset(name, tmp_path, split="val")
    assert sketch in str(err.value)
    (data / missing).rmdir()
    with pytest.raises(DatasetError, match=re.escape(f"images {data / missing} not found")) as err:
        create_dataset(name, data, split="val")  # the root may also be the dataset's folder itself
    assert sketch in str(err.value)


# ----------------------------------------------------------------------------------------- Pascal Context
@pytest.mark.parametrize("nested", [("VOC2010",), ()])
def test_context_other_root_layouts_and_aliases(tmp_path, nested):
    voc = make_context(tmp_path, nested)
    ds = create_dataset("pascal_context59", tmp_path, split="train")
    assert isinstance(ds, PascalContext59Segmentation) and len(ds) == 2
    assert ds.files[0] == (voc / "JPEGImages" / "2008_000002.jpg", voc / "SegmentationClassContext" / "2008_000002.png")
    assert isinstance(create_dataset("pascal_context", tmp_path, split="val"), PascalContextSegmentation)
    assert create_dataset("pascal_context_59", tmp_path, split="val").num_classes == 59


def test_context_missing_split_file_and_root(tmp_path):
    voc = make_context(tmp_path)
    split_file = voc / "ImageSets" / "SegmentationContext" / "val.txt"
    split_file.unlink()
    with pytest.raises(DatasetError, match=re.escape(f"Pascal Context split file {split_file} not found")) as err:
        create_dataset("context", tmp_path, split="val")
    assert "SegmentationClassContext/<id>.png" in str(err.value)
    assert "tools/dataset_converters/pascal_context.py" in str(err.value)
    with pytest.raises(DatasetError, match="valid splits: train, val$"):
        PascalContextSegmentation(tmp_path, split="test")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(DatasetError, match=re.escape(f"no Pascal Context found: expected {other}/VOCdevkit/VOC2010")):
        create_dataset("context59", other, split="val")
    (voc / "JPEGImages" / "2008_000003.jpg").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(voc / "JPEGImages" / "2008_000003.jpg"))):
        create_dataset("context", tmp_path, split="train")


# ---------------------------------------------------------------------------------------------- COCO-Stuff
def test_coco_stuff_pairs_label_train_ids(tmp_path):
    coco = make_coco(tmp_path)
    ds = create_dataset("coco-stuff164k", tmp_path, split="val")
    assert ds.files == [(coco / "images/val2017/val2017_000000.jpg",
                         coco / "annotations/val2017/val2017_000000_labelTrainIds.png")]
    ten = make_coco(tmp_path, "10k")
    test = COCOStuff10kSegmentation(tmp_path, split="test")
    assert test.files == create_dataset("coco_stuff10k", ten, split="val").files  # val is the test split
    assert test.files[0][1].name == "test2014_000000_labelTrainIds.png"
    with pytest.raises(DatasetError, match="valid splits: train, test, val"):
        COCOStuff10kSegmentation(tmp_path, split="val2014")


def test_coco_stuff_missing_converted_mask_names_suffix(tmp_path):
    coco = make_coco(tmp_path)
    mask = coco / "annotations/train2017/train2017_000001_labelTrainIds.png"
    mask.unlink()
    with pytest.raises(DatasetError, match=r"COCO-Stuff 164k split train \(masks \*_labelTrainIds\.png expected "):
        create_dataset("coco_stuff164k", tmp_path, split="train")


# ---------------------------------------------------------------------------------------------------- iSAID
def test_isaid_colour_masks_are_rejected(tmp_path):
    data = make_aerial(tmp_path, "isaid")
    ds = ISAIDSegmentation(tmp_path, split="val")
    assert ds.files[0][1] == data / "ann_dir/val/0_0_0_16_12_instance_color_RGB.png"
    Image.new("RGB", (W, H), (0, 0, 63)).save(ds.files[0][1])  # the original iSAID colour mask, unconverted
    with pytest.raises(DatasetError, match="RGB image: masks must be single-channel label-index PNGs"):
        ds[0]


# ------------------------------------------------------------------------------------- examples/evaluate.py
def test_evaluate_script_lists_the_new_datasets(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("segzoo_example_evaluate", EXAMPLES / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["evaluate.py", "--help"])
    with contextlib.suppress(SystemExit):
        module.parse_args()
    help_text = " ".join(capsys.readouterr().out.split())
    for name in NEW_NAMES:
        assert re.search(rf"\b{name}\b", help_text), name
    # evaluate.py builds its dataset with create_dataset(name, root, split=..., transform=EvalTransform(...)).
    assert module.create_dataset is create_dataset
