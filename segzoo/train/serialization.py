"""Checkpoint serialisation without pickle: nested state split into a JSON skeleton plus safetensors-ready
tensors, and the RNG states of torch, CUDA, ``random`` and numpy as plain values."""
from __future__ import annotations

import math
import random
import warnings

import numpy as np
import torch
from torch import Tensor

__all__ = ["capture_rng", "flatten_state", "restore_rng", "unflatten_state"]

_TAGS = {"__tensor__", "__tuple__", "__dict__", "__float__"}


def _join(path: str, key) -> str:
    return f"{path}/{key}" if path else str(key)


def flatten_state(obj, prefix: str = "") -> tuple[object, dict[str, Tensor]]:
    """Split nested dicts / lists / tuples into a JSON skeleton and ``{key: tensor}`` (keys are paths).

    Tensors become ``{"__tensor__": key}``, tuples ``{"__tuple__": [...]}`` (Adam's betas must come back as
    a tuple), dicts with int keys (optimizer state) ``{"__dict__": [[key, value], ...]}``, nan / inf
    ``{"__float__": "nan"}``; other Python scalars, strings and None stay as they are.

    Args:
        obj: The structure.
        prefix: Prefix of the tensor keys.

    Returns:
        ``(skeleton, tensors)``, which ``unflatten_state`` turns back into ``obj``.
    """
    tensors: dict[str, Tensor] = {}

    def walk(value, path: str):
        if isinstance(value, Tensor):
            if path in tensors:
                raise ValueError(f"two tensors map to the key {path!r}")
            tensors[path] = value.detach().to("cpu", copy=True).contiguous()  # safetensors refuses shared storage
            return {"__tensor__": path}
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, (tuple, list)):
            items = [walk(item, _join(path, i)) for i, item in enumerate(value)]
            return {"__tuple__": items} if isinstance(value, tuple) else items
        if isinstance(value, dict):
            if all(isinstance(key, str) for key in value) and not (len(value) == 1 and set(value) <= _TAGS):
                return {key: walk(item, _join(path, key)) for key, item in value.items()}
            bad = [key for key in value if isinstance(key, bool) or not isinstance(key, (int, str))]
            if bad:
                raise TypeError(f"cannot store the dict key {bad[0]!r} at {path or '/'}: only str and int keys")
            return {"__dict__": [[key, walk(item, _join(path, key))] for key, item in value.items()]}
        raise TypeError(f"cannot store a {type(value).__name__} at {path or '/'} in a training checkpoint")

    return walk(obj, prefix), tensors


def unflatten_state(skeleton, tensors: dict[str, Tensor]):
    """Rebuild the structure that ``flatten_state`` split.

    Args:
        skeleton: The JSON skeleton.
        tensors: The tensors it refers to (a missing key raises ``KeyError``).

    Returns:
        The structure, with int dict keys and tuples as they were.
    """
    if isinstance(skeleton, list):
        return [unflatten_state(item, tensors) for item in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if len(skeleton) == 1 and set(skeleton) <= _TAGS:
        ((tag, value),) = skeleton.items()
        if tag == "__tensor__":
            return tensors[value]
        if tag == "__float__":
            return float(value)
        if tag == "__tuple__":
            return tuple(unflatten_state(item, tensors) for item in value)
        return {key: unflatten_state(item, tensors) for key, item in value}
    return {key: unflatten_state(item, tensors) for key, item in skeleton.items()}


def capture_rng() -> dict:
    """The RNG states of torch (CPU, and every CUDA device once CUDA is initialised), ``random`` and numpy.

    Returns:
        ``{"torch": Tensor, "python": tuple, "numpy": list[, "cuda": list[Tensor]]}``, which
        ``flatten_state`` stores without pickle.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Restore the RNG states.

    Args:
        state: What ``capture_rng`` returned. CUDA states are restored only when the device count matches.
    """
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(list(cuda))
        else:
            warnings.warn(f"checkpoint has CUDA RNG states of {len(cuda)} device(s), this process sees "
                          f"{torch.cuda.device_count()}: CUDA RNG not restored", stacklevel=2)
