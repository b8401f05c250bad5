"""Folder datasets of binary masks (0/255 and 0/1, with an ignore value) read without conversion."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segzoo.data import create_dataset
from segzoo.errors import DatasetError


def write_pair(root, name, mask: np.ndarray):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(mask.shape + (3,), 128, np.uint8)).save(root / "images" / f"{name}.png")
    Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{name}.png")


def test_binary_masks_0_255_and_0_1(tmp_path):
    write_pair(tmp_path, "a", np.array([[0, 255], [255, 0]]))
    write_pair(tmp_path, "b", np.array([[0, 1], [1, 1]]))
    dataset = create_dataset("folder", tmp_path, task="binary")
    assert dataset.num_classes == 1 and dataset.class_names == ("foreground",)
    dataset.check()
    assert dataset.load(0)[1].tolist() == [[0, 1], [1, 0]] and dataset.load(1)[1].tolist() == [[0, 1], [1, 1]]


def test_binary_ignore_value_and_class_name(tmp_path):
    write_pair(tmp_path, "a", np.array([[0, 1], [255, 1]]))
    (tmp_path / "classes.txt").write_text("road\n")
    dataset = create_dataset("folder", tmp_path, task="binary", ignore_value=255)
    assert dataset.class_names == ("road",)
    assert dataset.load(0)[1].tolist() == [[0, 1], [255, 1]]  # 255 stored -> the ignore index


def test_binary_with_several_classes_is_refused(tmp_path):
    write_pair(tmp_path, "a", np.array([[0, 1]]))
    (tmp_path / "classes.txt").write_text("road\ncar\n")
    with pytest.raises(DatasetError, match=r"a binary folder dataset has one class \(the foreground\), got 2"):
        create_dataset("folder", tmp_path, task="binary")
