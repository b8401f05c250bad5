"""Reading an upstream .pth (segzoo.weights.convert.load_source_state_dict): corrupt bytes are one CheckpointError,
whatever the unpickler raises on them (about 1 random 4 KiB file in 10 made it raise IndexError or KeyError)."""
import random

import pytest
import torch

from segzoo.errors import CheckpointError
from segzoo.weights.convert import load_source_state_dict


@pytest.mark.parametrize("seed, raw_error", [(0, "UnpicklingError"), (7, "IndexError"), (44, "KeyError"),
                                             (199, "UnicodeDecodeError")])
def test_random_bytes_are_a_checkpoint_error(tmp_path, seed, raw_error):
    generator = random.Random(seed)
    path = tmp_path / "junk.pth"
    path.write_bytes(bytes(generator.getrandbits(8) for _ in range(4096)))
    with pytest.raises(Exception) as raw:  # what torch itself raises on these bytes (the case this seed covers)
        torch.load(path, weights_only=True)
    assert type(raw.value).__name__ == raw_error
    with pytest.raises(CheckpointError, match=r"junk\.pth is not a (readable )?PyTorch checkpoint") as info:
        load_source_state_dict(path)
    assert "\n" not in str(info.value) and "weights_only=False" not in str(info.value)


def test_a_plain_state_dict_still_loads(tmp_path):
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "ok.pth")
    assert torch.equal(load_source_state_dict(tmp_path / "ok.pth")["w"], torch.ones(2))
