"""The README's quick start command, run as a newcomer runs it."""
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import REPO


def test_quickstart_segments_the_voc_sample(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert "fcn_resnet18: image 500x375 -> logits (1, 21, 375, 500)" in out.stdout
    mask = Image.open(tmp_path / "mask.png")
    assert mask.mode == "P" and mask.size == (500, 375)
    assert np.asarray(mask).max() < 21
    assert mask.getpalette()[3:6] == [128, 0, 0]  # VOC palette: class 1 (aeroplane) is dark red
    assert Image.open(tmp_path / "overlay.png").size == (500, 375)
