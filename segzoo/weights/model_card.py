"""The README.md model card pushed with every model: Hub metadata (YAML) and a usage page."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..config import ModelConfig
from ..registry import get_head, get_neck
from ..zoo import DATASETS, PretrainedEntry, license_flag

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

__all__ = ["build_model_card", "neck_display_name"]

_METRIC_TYPES = {"mIoU": "mean_iou", "pixAcc": "accuracy"}


def _dataset_and_metrics(entry: Optional[PretrainedEntry], card_data: dict[str, Any]) -> tuple[Optional[str], dict]:
    """The dataset key and reported metrics: the caller's card data, else the zoo entry's."""
    dataset_key = card_data.get("dataset", entry.dataset if entry else None)
    metrics = card_data.get("metrics") or (entry.metrics if entry else {})
    return dataset_key, metrics


def _base_model(config: ModelConfig, entry: Optional[PretrainedEntry]) -> Optional[str]:
    """The Hub model this one started from, only where it is known: a zoo entry's upstream ImageNet backbone, or
    what the config's provenance records (timm ImageNet weights loaded with ``pretrained_backbone=True``, the
    weights a fine-tune started from). A model trained from scratch has none."""
    if entry is not None:
        return entry.base_model
    return config.provenance.get("base_model")


def _metadata(config: ModelConfig, repo_id: str, dataset_key: Optional[str], metrics: dict,
              card_data: dict[str, Any], entry: Optional[PretrainedEntry]) -> "ModelCardData":
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import EvalResult

    extra = {key: value for key, value in card_data.items() if key not in ("metrics", "dataset")}
    dataset = DATASETS.get(dataset_key)
    dataset_name = dataset.eval_split if dataset else dataset_key
    dataset_id = dataset.hub_id if dataset else dataset_key
    eval_results = [
        EvalResult(task_type="image-segmentation", dataset_type=dataset_id, dataset_name=dataset_name,
                   metric_type=_METRIC_TYPES.get(name, name), metric_name=name, metric_value=value)
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and dataset_id
    ]
    fields: dict[str, Any] = dict(
        library_name="segzoo", pipeline_tag="image-segmentation", license=entry.license if entry else None,
        tags=["segzoo", "semantic-segmentation", config.head, config.backbone],
        datasets=[dataset_id] if dataset_id else None, base_model=_base_model(config, entry),
        model_name=repo_id.split("/")[-1], eval_results=eval_results or None,
    )
    fields.update(extra)  # the caller's card data wins
    return ModelCardData(**{k: v for k, v in fields.items() if v is not None})


def neck_display_name(config: ModelConfig) -> Optional[str]:
    """How texts name the model's neck (``"JPU"``), or None without a neck."""
    if config.neck is None:
        return None
    return getattr(get_neck(config.neck), "display_name", "") or config.neck


def _citations(config: ModelConfig) -> str:
    """BibTeX of the head's paper and, with a neck, of the neck's."""
    owners = [get_head(config.head)] + ([get_neck(config.neck)] if config.neck is not None else [])
    return "\n\n".join(c for c in (getattr(owner, "citation", "") for owner in owners) if c)


def build_model_card(config: ModelConfig, repo_id: str, entry: Optional[PretrainedEntry] = None,
                     card_data: Optional[dict[str, Any]] = None) -> str:
    """The model card text (YAML front matter + Markdown).

    Args:
        config: The model's config (its head and neck plug-ins give the citations).
        repo_id: Hub repository id (for the usage snippet).
        entry: The zoo entry this model is, if any (dataset, reported metrics, recipe).
        card_data: Extra metadata: any Hub card field (``license``, ``tags``, ``base_model``, ...) overrides the
            default (a zoo entry's licence; for other models no licence is claimed: set yours here);
            ``metrics`` (``{"mIoU": 78.5}``) and ``dataset`` (``"voc"``, ``"citys"``, ``"ade"`` or a Hub
            dataset id) make the model-index.
    """
    card_data = dict(card_data or {})
    dataset_key, metrics = _dataset_and_metrics(entry, card_data)
    metadata = _metadata(config, repo_id, dataset_key, metrics, card_data, entry)
    neck = neck_display_name(config)
    stride = f"output stride {config.output_stride}"
    structure = f"{neck} neck ({stride})" if neck else stride
    classes = ", ".join(config.class_names) if config.class_names else f"{config.num_classes} classes (unnamed)"
    metric_lines = [f"| {name} | {value} |" for name, value in metrics.items() if isinstance(value, (int, float))]
    citations = _citations(config)
    bands = {1: "greyscale", 3: "RGB"}.get(config.in_chans, f"{config.in_chans}-band")
    decode = {
        "multiclass": "logits.argmax(1)  # (1, H, W) class indices",
        "binary": f"torch.sigmoid(logits)[:, 0] > {config.threshold}  # (1, H, W) foreground",
        "multilabel": f"torch.sigmoid(logits) > {config.threshold}  # (1, labels, H, W), one mask per label",
    }[config.mode]
    task = {
        "multiclass": "one class per pixel (softmax)",
        "binary": f"binary: one output channel, foreground where its sigmoid is above {config.threshold}",
        "multilabel": f"multi-label: one output channel per label, each label present where its sigmoid is above "
                      f"{config.threshold} (a pixel may have several labels, or none)",
    }[config.mode]
    sections = [
        f"# {repo_id.split('/')[-1]}",
        f"Semantic segmentation with segzoo: the **{config.head}** head on a timm **{config.backbone}** backbone "
        f"({structure}{', aux head' if config.aux else ''}).",
        "## Usage",
        "```python\nimport segzoo, torch\n\n"
        f'model = segzoo.create_model("hf-hub:{repo_id}")  # eval mode\n'
        f"images = torch.randn(1, {config.in_chans}, {config.input_size[0]}, {config.input_size[1]})"
        f"  # normalised {bands}\n"
        f"logits = model(images)  # (1, {config.num_classes}, H, W)\nmasks = {decode}\n```",
        "## Task",
        f"{task[0].upper() + task[1:]}.",
        "## Preprocessing",
        f"{bands[0].upper() + bands[1:]} input ({config.in_chans} channel{'s' if config.in_chans > 1 else ''}) "
        "in [0, 1], "
        f"normalised with mean {list(config.mean)} and std {list(config.std)}; "
        f"evaluated at {config.input_size[0]}x{config.input_size[1]}; bilinear upsampling with "
        f"align_corners={config.align_corners}.",
        "## Classes",
        classes,
    ]
    if metric_lines:
        where = f" on {metrics['split']}" if "split" in metrics else ""
        sections += [f"## Results{where}", "| metric | value |\n|---|---|\n" + "\n".join(metric_lines)]
        if entry and not card_data.get("metrics"):
            sections.append(f"Source: {entry.source}.")
    flag = license_flag(entry.license, entry.terms) if entry is not None else None
    if flag:  # said before anything else about the weights: nobody should ship them unawares
        sections += ["## Licence", f"**{flag[0].upper() + flag[1:]}: the weights are under `{entry.license}`.** "
                                   f"{entry.terms}"]
    if entry is not None and entry.file is not None:
        sections += ["## Weights", f"Converted by segzoo, key by key, from the {entry.upstream} checkpoint "
                                   f"`{entry.file.path}` ({entry.file.host}); the converted model reproduces the "
                                   f"upstream model's outputs. Licence: {entry.terms}"]
    elif entry is not None:
        sections += ["## Weights", f"Licence: {entry.terms}"]
    if dataset_key in DATASETS:
        sections += ["## Training recipe", DATASETS[dataset_key].recipe]
    if citations:
        sections += ["## Citation", f"```bibtex\n{citations}\n```"]
    return f"---\n{metadata.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"
