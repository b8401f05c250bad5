"""``model_info``: what a model name stands for, without downloading weights or computing anything."""
from __future__ import annotations

from typing import Any, Optional

import torch

from ..config import ModelConfig
from ..model import SegmentationModel
from ..weights.model_card import neck_display_name
from ..weights.resolver import GenericName, ResolvedModel, ZooName, resolve_model_name
from ..weights.sources import HubOptions, HubSource, LocalDirSource, UpstreamSource
from ..zoo import license_flag
from .flops import count_model_flops

__all__ = ["model_info", "format_info"]


def _weights(resolved: ResolvedModel, options: HubOptions) -> dict[str, Any]:
    """Where the weights of a resolved name live, and whether they are in the Hub cache (nothing downloaded)."""
    if isinstance(resolved, ZooName):
        entry = resolved.entry
        upstream = next((s for s in resolved.weights if isinstance(s, UpstreamSource)), None)
        uses = resolved.weights[0] if resolved.weights else None  # what create_model(pretrained=True) tries first
        path = uses.cached_path(options) if uses is not None else None
        return {"source": "zoo", "repo_id": entry.hf_hub_id, "published": entry.published,
                "revision": entry.revision, "sha256": entry.sha256,
                "upstream_url": upstream.url() if upstream else None,
                "uses": None if uses is None else ("mirror" if isinstance(uses, HubSource) else "upstream"),
                "cached": path is not None, "path": path}
    if isinstance(resolved, GenericName):
        return {"source": "none: random initialisation (pretrained_backbone=True loads ImageNet weights)"}
    source = resolved.weights[0]
    if isinstance(source, LocalDirSource):
        return {"source": source.description, "path": source.weights_path()}
    cached = source.cached_path(options)
    return {"source": source.description, "repo_id": source.repo_id, "revision": source.revision or "main",
            "cached": cached is not None, "path": cached}


def _config(resolved: ResolvedModel, options: HubOptions) -> ModelConfig:
    """The name's config: known from the name, or read from its weights' source (hf-hub: downloads config.json)."""
    return resolved.config if resolved.config is not None else resolved.weights[0].read_config(options)


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
    resolved = resolve_model_name(name)
    options = HubOptions(cache_dir=cache_dir, token=token, endpoint=endpoint)
    config, weights = _config(resolved, options), _weights(resolved, options)
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
    if resolved.entry is not None:
        entry = resolved.entry
        info.update(zoo_name=entry.name, metrics=entry.metrics, metrics_source=entry.source, dataset=entry.dataset,
                    upstream=entry.upstream, license=entry.license,
                    license_flag=license_flag(entry.license, entry.terms), terms=entry.terms)
    return info


def _recipe_text(recipe: dict[str, Any]) -> str:
    """``config.inference`` in words: ``resized to fit 2049x1025, 769x769 windows every 513x513``."""
    parts = []
    if recipe.get("resize"):
        parts.append("resized to fit {}x{} (long x short side)".format(*recipe["resize"]))
    if recipe.get("mode") == "slide":
        parts.append("{}x{} windows".format(*recipe["crop"]) + " every {}x{}".format(*recipe["stride"]))
    else:
        parts.append("whole")
    return ", ".join(parts)


def _task_text(config: dict) -> str:
    kind = "binary: one sigmoid channel" if config["mode"] == "binary" else "multi-label: a sigmoid per label"
    return f"{kind}, threshold {config.get('threshold', 0.5)}"


def _input_text(config: dict) -> str:
    in_chans = config.get("in_chans", 3)
    return "" if in_chans == 3 else ("greyscale, " if in_chans == 1 else f"{in_chans} bands, ")


def format_info(info: dict[str, Any]) -> str:
    """A human-readable text of ``model_info``'s result."""
    config = info["config"]
    structure = neck_display_name(ModelConfig.from_dict(config)) or f"output stride {config['output_stride']}"
    zoo_name = info.get("zoo_name")
    lines = [
        f"{info['name']}" + (f" (zoo name {zoo_name})" if zoo_name and zoo_name != info["name"] else ""),
        f"  head            {config['head']} {config['head_kwargs'] or ''}".rstrip(),
        f"  backbone        {config['backbone']} {config.get('backbone_kwargs') or ''}".rstrip()
        + f" ({structure}){', aux head' if config['aux'] else ''}",
        f"  classes         {config['num_classes']}"
        + (f": {', '.join(info['classes'])}" if info["classes"] else ""),
        *([f"  task            {_task_text(config)}"] if config.get("mode", "multiclass") != "multiclass" else []),
        f"  preprocessing   {_input_text(config)}mean {config['mean']}, std {config['std']}, "
        f"align_corners={config['align_corners']}",
        *([f"  evaluated as    {_recipe_text(config['inference'])}"] if config.get("inference") else []),
        f"  parameters      {info['params_m']:.2f} M",
        f"  GFLOPs          {info['gflops']:.1f} at {info['eval_size'][0]}x{info['eval_size'][1]}",
    ]
    if "metrics" in info:
        metrics = info["metrics"]
        shown = ", ".join(f"{k} {v}" for k, v in metrics.items() if isinstance(v, (int, float))) or "not reported"
        lines.append(f"  reported        {shown} ({metrics.get('split', '')}; {info['metrics_source']})")
    weights = info["weights"]
    where = weights["source"]
    if where == "zoo":
        where = _zoo_weights_text(weights)
    elif "repo_id" in weights:
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
    if "license" in info:
        flag = f" (!) {info['license_flag']}" if info.get("license_flag") else ""
        lines.append(f"  licence         {info['license']}{flag}: {info['terms']}")
    return "\n".join(lines)


def _zoo_weights_text(weights: dict[str, Any]) -> str:
    cached = f"cached at {weights['path']}" if weights["cached"] else "not cached"
    mirror = f"segzoo mirror {weights['repo_id']}"
    if weights["uses"] == "mirror":
        return f"{mirror}@{weights['revision']} ({cached})"
    if weights["uses"] == "upstream":
        how = "" if weights["cached"] else ": downloaded and converted to safetensors on first use"
        return f"upstream file {weights['upstream_url']} ({cached}{how}; {mirror} not published yet)"
    return "none: its upstream published no checkpoint (pretrained=False builds the architecture)"
