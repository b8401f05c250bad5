"""Run the example scripts as real processes (python or torchrun), and a tiny learnable folder dataset."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLASS_COLOURS = ((20, 20, 20), (220, 40, 40), (40, 200, 60))  # background, "red", "green": easy to learn


def free_port() -> int:
    # torchrun's --master_port=0 hangs with the static rendezvous; ask the OS for a free port instead.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def script_env(nproc: int = 1) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    if nproc > 1:  # several processes on two cores: one thread each, or they fight over the cores
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def run_script(script: str, *args, nproc: int = 0, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``examples/<script>`` with python (nproc 0) or under torchrun with ``nproc`` processes.

    On a timeout the whole process group (torchrun and its workers) is killed, so nothing lingers."""
    command = [sys.executable]
    if nproc:
        command += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
                    f"--master_port={free_port()}"]
    command += [str(EXAMPLES / script), *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=script_env(nproc), start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"{script} timed out after {timeout} s\n{stdout}\n{stderr}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args} failed\n{result.stdout}\n{result.stderr}"
    return result


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_folder_dataset(root: Path, train: int = 8, val: int = 3, size=(40, 48), seed: int = 0) -> Path:
    """images/{train,val} + masks/{train,val} + classes.txt: noisy background with a red and a green
    rectangle whose colour tells the class, and a 255 (ignore) border on the masks."""
    rng = np.random.default_rng(seed)
    height, width = size
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for index in range(count):
            label = np.zeros(size, dtype=np.uint8)
            for cls in (1, 2):
                top, left = rng.integers(0, height - 12), rng.integers(0, width - 12)
                label[top:top + rng.integers(8, 14), left:left + rng.integers(8, 14)] = cls
            rgb = np.asarray(CLASS_COLOURS, dtype=np.float64)[label] + rng.normal(0, 12, size + (3,))
            label[0, :] = 255
            Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(root / "images" / split / f"{index:03d}.png")
            Image.fromarray(label, mode="L").save(root / "masks" / split / f"{index:03d}.png")
    (root / "classes.txt").write_text("background\nred\ngreen\n")
    return root


@contextmanager
def umask(mask: int):
    """Run the block under this process umask, restoring the old one after."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
