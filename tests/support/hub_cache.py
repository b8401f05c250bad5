"""Fill a Hugging Face Hub cache folder as huggingface_hub writes it, so that timm's pretrained weights load offline."""
from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fill_hub_cache(cache: Path, repo: str, weights: dict) -> str:
    """``<cache>/models--<org>--<name>``: refs/main -> snapshots/<COMMIT>/model.safetensors holding ``weights``.
    Returns the weights file's path."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    save_file(weights, str(snapshot / "model.safetensors"))
    return str(snapshot / "model.safetensors")
