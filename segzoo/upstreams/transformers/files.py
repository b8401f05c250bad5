"""A transformers model directory as ``save_pretrained`` writes it: ``config.json`` and ``model.safetensors``, or
its shards with ``model.safetensors.index.json``. Only safetensors are read: a directory with pickled weights only
(``pytorch_model.bin``) is refused."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch

from ...errors import CheckpointError

__all__ = ["read_model_dir", "class_names_of"]

_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not readable JSON: {err}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {err}") from None


def read_model_dir(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict (all shards) and ``config.json`` of a transformers model directory."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} has no config.json: expected a transformers model directory "
                              f"(config.json + model.safetensors, as save_pretrained writes it)")
    config = _json(path / "config.json")
    single, index = path / "model.safetensors", path / "model.safetensors.index.json"
    if single.is_file():
        return _read_safetensors(single), config
    if index.is_file():
        weight_map = _json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index} has no weight_map")
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            if not isinstance(shard, str) or "/" in shard or not (path / shard).is_file():
                raise CheckpointError(f"{index} names shard {shard!r}, which is not in {path}")
            state.update(_read_safetensors(path / shard))
        return state, config
    pickles = [name for name in _PICKLES if (path / name).exists()]
    if pickles:
        raise CheckpointError(f"{path} holds only {pickles[0]} (pickled weights), which segzoo does not read: it "
                              f"reads model.safetensors (transformers' save_pretrained writes it by default)")
    raise CheckpointError(f"{path} has config.json but no model.safetensors (or its shards and index)")


def class_names_of(config: dict[str, Any], num_classes: int) -> Optional[tuple[str, ...]]:
    """The class names of ``config.json``'s ``id2label``, in label order, when it names every class (not
    transformers' placeholder ``LABEL_i``)."""
    labels = config.get("id2label")
    if not isinstance(labels, dict):
        return None
    try:
        names = tuple(str(labels[key]) for key in sorted(labels, key=int))
    except (TypeError, ValueError):
        return None
    if len(names) != num_classes or all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names
