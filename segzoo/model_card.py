"""The README.md model card pushed with every model: Hub metadata (YAML) and a usage page."""
from __future__ import annotations

from typing import Any, Optional

from huggingface_hub import ModelCardData
from huggingface_hub.repocard_data import EvalResult

from .backbones.jpu import JPU_CITATION
from .config import ModelConfig
from .pretrained import DATASETS, PretrainedEntry

__all__ = ["build_model_card"]

# Hub dataset ids of the zoo's datasets.
_HUB_DATASETS = {"voc": "pascal-voc-2012", "citys": "cityscapes", "ade": "ade20k"}
_RECIPES = {
    "voc": "Pascal VOC 2012 train_aug (10,582 images), 50 epochs; base size 540, crop 480; SGD momentum 0.9, "
           "weight decay 1e-4, lr 0.001 x batch/8 x GPUs with 10x on head, neck and aux; 200 warm-up "
           "iterations, then poly (power 0.9); aux loss weight 0.4.",
    "citys": "Cityscapes fine train (2,975 images), 120 epochs; base size 1024, crop 768; SGD momentum 0.9, "
             "weight decay 1e-4, lr 0.01 x batch/8 x GPUs with 10x on head, neck and aux; 200 warm-up "
             "iterations, then poly (power 0.9); aux loss weight 0.4.",
    "ade": "ADE20K train (20,210 images); base size 520, crop 480; the reference recipe (SGD, poly schedule).",
}
_METRIC_TYPES = {"mIoU": "mean_iou", "pixAcc": "accuracy"}


def _dataset_and_metrics(entry: Optional[PretrainedEntry], card_data: dict[str, Any]) -> tuple[Optional[str], dict]:
    """The dataset key and reported metrics: the caller's card data, else the zoo entry's."""
    dataset_key = card_data.get("dataset", entry.dataset if entry else None)
    metrics = card_data.get("metrics") or (entry.metrics if entry else {})
    return dataset_key, metrics


def _metadata(config: ModelConfig, repo_id: str, dataset_key: Optional[str], metrics: dict,
              card_data: dict[str, Any]) -> ModelCardData:
    extra = {key: value for key, value in card_data.items() if key not in ("metrics", "dataset")}
    dataset_name = DATASETS[dataset_key][0] if dataset_key in DATASETS else dataset_key
    dataset_id = _HUB_DATASETS.get(dataset_key, dataset_key)
    eval_results = [
        EvalResult(task_type="image-segmentation", dataset_type=dataset_id, dataset_name=dataset_name,
                   metric_type=_METRIC_TYPES.get(name, name), metric_name=name, metric_value=value)
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and dataset_id
    ]
    fields: dict[str, Any] = dict(
        library_name="segzoo", pipeline_tag="image-segmentation", license="apache-2.0",
        tags=["segzoo", "semantic-segmentation", config.head, config.backbone],
        datasets=[dataset_id] if dataset_id else None,
        base_model=f"timm/{config.backbone}.gluon_in1k" if config.backbone.startswith("resnet") else None,
        model_name=repo_id.split("/")[-1], eval_results=eval_results or None,
    )
    fields.update(extra)  # the caller's card data wins
    return ModelCardData(**{k: v for k, v in fields.items() if v is not None})


def build_model_card(config: ModelConfig, repo_id: str, head_citation: str = "",
                     entry: Optional[PretrainedEntry] = None, card_data: Optional[dict[str, Any]] = None) -> str:
    """The model card text (YAML front matter + Markdown).

    Args:
        config: The model's config.
        repo_id: Hub repository id (for the usage snippet).
        head_citation: BibTeX of the head's paper.
        entry: The zoo entry this model is, if any (dataset, reported metrics, recipe).
        card_data: Extra metadata: any Hub card field (``license``, ``tags``, ...) overrides the default;
            ``metrics`` (``{"mIoU": 78.5}``) and ``dataset`` (``"voc"``, ``"citys"``, ``"ade"`` or a Hub
            dataset id) make the model-index.
    """
    card_data = dict(card_data or {})
    dataset_key, metrics = _dataset_and_metrics(entry, card_data)
    metadata = _metadata(config, repo_id, dataset_key, metrics, card_data)
    structure = "JPU neck (output stride 32)" if config.neck == "jpu" else f"output stride {config.output_stride}"
    classes = ", ".join(config.class_names) if config.class_names else f"{config.num_classes} classes (unnamed)"
    metric_lines = [f"| {name} | {value} |" for name, value in metrics.items() if isinstance(value, (int, float))]
    citations = "\n\n".join(c for c in (head_citation, JPU_CITATION if config.neck == "jpu" else "") if c)
    sections = [
        f"# {repo_id.split('/')[-1]}",
        f"Semantic segmentation with segzoo: the **{config.head}** head on a timm **{config.backbone}** backbone "
        f"({structure}{', aux head' if config.aux else ''}).",
        "## Usage",
        "```python\nimport segzoo, torch\n\n"
        f'model = segzoo.create_model("hf-hub:{repo_id}")  # eval mode\n'
        f"images = torch.randn(1, 3, {config.input_size[0]}, {config.input_size[1]})  # normalised RGB\n"
        "logits = model(images)  # (1, num_classes, H, W)\n```",
        "## Preprocessing",
        f"RGB in [0, 1], normalised with mean {list(config.mean)} and std {list(config.std)}; "
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
    if dataset_key in _RECIPES:
        sections += ["## Training recipe", _RECIPES[dataset_key]]
    if citations:
        sections += ["## Citation", f"```bibtex\n{citations}\n```"]
    return f"---\n{metadata.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"
