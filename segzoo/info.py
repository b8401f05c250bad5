"""``model_info``: what a model name stands for, without downloading weights or computing anything."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from .benchmark import count_model_flops
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME
from .config import ModelConfig
from .factory import HF_HUB_PREFIX, LOCAL_DIR_PREFIX, create_model
from .hub import _download, _endpoint, parse_hub_name
from .model import SegmentationModel
from .pretrained import get_pretrained, is_pretrained_name

__all__ = ["model_info", "format_info"]


def _cached(repo_id: str, revision: Optional[str], cache_dir: Optional[str]) -> Optional[str]:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, WEIGHTS_NAME, cache_dir=cache_dir, revision=revision or "main")
    return path if isinstance(path, str) else None


def _config_and_weights(name: str, cache_dir, token, endpoint) -> tuple[ModelConfig, dict[str, Any]]:
    if name.startswith(LOCAL_DIR_PREFIX):
        directory = Path(name[len(LOCAL_DIR_PREFIX):])
        return ModelConfig.load(directory / CONFIG_NAME), {"source": "local directory",
                                                           "path": str(directory / WEIGHTS_NAME)}
    if name.startswith(HF_HUB_PREFIX):
        repo_id, revision = parse_hub_name(name[len(HF_HUB_PREFIX):])
        config_path = _download(repo_id, CONFIG_NAME, revision, cache_dir=cache_dir, token=token,
                                endpoint=_endpoint(endpoint))
        cached = _cached(repo_id, revision, cache_dir)
        return ModelConfig.load(config_path), {"source": "Hugging Face Hub", "repo_id": repo_id,
                                               "revision": revision or "main", "cached": cached is not None,
                                               "path": cached}
    if is_pretrained_name(name):
        entry = get_pretrained(name)
        cached = _cached(entry.hf_hub_id, entry.revision, cache_dir) if entry.published else None
        return entry.config, {"source": "zoo", "repo_id": entry.hf_hub_id, "published": entry.published,
                              "revision": entry.revision, "sha256": entry.sha256, "cached": cached is not None,
                              "path": cached}
    with torch.device("meta"):
        config = create_model(name).config
    return config, {"source": "none: random initialisation (pretrained_backbone=True loads ImageNet weights)"}


def model_info(name: str, *, cache_dir: Optional[str] = None, token: Optional[str] = None,
               endpoint: Optional[str] = None) -> dict[str, Any]:
    """Describe a model: config, parameters, GFLOPs at its eval size, classes, metrics, where its weights are.

    Args:
        name: Anything ``create_model`` accepts. ``hf-hub:`` names download ``config.json`` only.
        cache_dir: Hub cache directory.
        token: Hub token.
        endpoint: Hub URL.

    Returns:
        A JSON-ready dict.
    """
    config, weights = _config_and_weights(name, cache_dir, token, endpoint)
    with torch.device("meta"):
        model = SegmentationModel(config)
    gflops, params_m = count_model_flops(model.eval(), config.input_size)
    info: dict[str, Any] = {
        "name": name,
        "config": config.to_dict(),
        "params_m": round(params_m, 3),
        "gflops": round(gflops, 1),
        "eval_size": list(config.input_size),
        "classes": list(config.class_names) if config.class_names else None,
        "weights": weights,
    }
    if is_pretrained_name(name):
        entry = get_pretrained(name)
        info.update(metrics=entry.metrics, metrics_source=entry.source, dataset=entry.dataset)
    return info


def format_info(info: dict[str, Any]) -> str:
    """A human-readable text of ``model_info``'s result."""
    config = info["config"]
    structure = "JPU" if config["neck"] == "jpu" else f"output stride {config['output_stride']}"
    lines = [
        f"{info['name']}",
        f"  head            {config['head']} {config['head_kwargs'] or ''}".rstrip(),
        f"  backbone        {config['backbone']} ({structure}){', aux head' if config['aux'] else ''}",
        f"  classes         {config['num_classes']}"
        + (f": {', '.join(info['classes'])}" if info["classes"] else ""),
        f"  preprocessing   mean {config['mean']}, std {config['std']}, align_corners={config['align_corners']}",
        f"  parameters      {info['params_m']:.2f} M",
        f"  GFLOPs          {info['gflops']:.1f} at {info['eval_size'][0]}x{info['eval_size'][1]}",
    ]
    if "metrics" in info:
        metrics = info["metrics"]
        shown = ", ".join(f"{k} {v}" for k, v in metrics.items() if isinstance(v, (int, float))) or "not reported"
        lines.append(f"  reported        {shown} ({metrics.get('split', '')}; {info['metrics_source']})")
    weights = info["weights"]
    where = weights["source"]
    if "repo_id" in weights:
        where += f": {weights['repo_id']}"
        if weights.get("revision"):
            where += f"@{weights['revision']}"
        if weights.get("published") is False:
            where += " (not published yet)"
        else:
            where += f" ({'cached at ' + weights['path'] if weights.get('cached') else 'not cached'})"
    elif "path" in weights:
        where += f": {weights['path']}"
    lines.append(f"  weights         {where}")
    return "\n".join(lines)
