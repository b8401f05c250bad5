"""The example plug-in packages (``examples/plugin_*``), installed with pip as a user would install them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def pip_install_example(package: Path, target: Path, dist_info: str) -> Path:
    """``pip install --target target package`` (no dependencies, no build isolation: offline), checked to have
    written ``<dist_info>/entry_points.txt``; returns ``target``, to put on ``PYTHONPATH``."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(package)], check=True)
    assert list(target.glob(f"{dist_info}/entry_points.txt")), f"{package} installed no {dist_info}"
    return target
