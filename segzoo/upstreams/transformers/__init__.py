"""transformers as an upstream: segmentation repos on the Hugging Face Hub (``openmmlab/upernet-convnext-*``,
``openmmlab/upernet-swin-*``, ``microsoft/beit-*``, ``nvidia/segformer-*``, ``Intel/dpt-large-ade``,
``facebook/mask2former-swin-*-semantic``) read as safetensors, without transformers installed. Their files are
downloaded over the Hub's own HTTP file protocol (``<endpoint>/<repo>/resolve/<revision>/model.safetensors``;
``HF_ENDPOINT`` sets another endpoint, as for huggingface_hub), converted once and cached; ``segzoo convert --from
transformers DIR OUT`` converts a directory as transformers' ``save_pretrained`` writes it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch

from ...config import ModelConfig
from ...upstream import KeyRule, PretrainedSpec, Upstream, UpstreamFile
from ..base import Host, UpstreamPlugin
from . import dpt_layout, layout, mask2former_layout
from .entries import ENTRIES
from .files import class_names_of, read_model_dir

__all__ = ["TransformersUpstream", "SOURCE"]

SOURCE = "transformers"


class TransformersUpstream(UpstreamPlugin):
    """Segmentation repos in transformers' layout on the Hugging Face Hub."""

    name = SOURCE
    order = 3
    hosts = {"hub": Host("HF_ENDPOINT", "https://huggingface.co")}
    license = "other"
    terms = "The licence its Hub repo states (each entry names it); the training data's terms apply (ADE20K)."

    def entries(self) -> tuple[PretrainedSpec, ...]:
        return ENTRIES

    def detect(self, keys: Iterable[str]) -> str:
        return layout.detect(keys)

    def infer_backbone(self, keys: Mapping[str, Any], variant: str = layout.CONVNEXT) -> str:
        return layout.infer_backbone(keys, variant)

    def rules(self, form: Upstream, config: ModelConfig, variant: str = layout.CONVNEXT) -> tuple[KeyRule, ...]:
        return layout.rules(form, config, variant)

    def dropped(self, variant: str) -> tuple[str, ...]:
        return layout.dropped(variant)

    def unused(self, config: ModelConfig, variant: str) -> tuple[str, ...]:
        return layout.unused(config, variant)

    def prepare(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return layout.prepare(state_dict)

    def config_for(self, head: str, form: Upstream, backbone: str, num_classes: int, keys: Any = (),
                   variant: str = layout.CONVNEXT) -> ModelConfig:
        return layout.config_for(head, form, backbone, num_classes, keys, variant)

    def recognises_config(self, config: Mapping[str, Any]) -> bool:
        """transformers' UPerNet configs (``model_type`` ``"upernet"``), BEiT's, SegFormer's and DPT's semantic
        segmentation ones, and Mask2Former's universal segmentation ones."""
        architectures = config.get("architectures") or []
        return config.get("model_type") == "upernet" or (
            config.get("model_type") == "beit" and "BeitForSemanticSegmentation" in architectures) or (
            config.get("model_type") == "segformer" and "SegformerForSemanticSegmentation" in architectures) or (
            config.get("model_type") == "dpt" and "DPTForSemanticSegmentation" in architectures) or (
            config.get("model_type") == "mask2former" and "Mask2FormerForUniversalSegmentation" in architectures)

    def hub_repo(self, file: UpstreamFile) -> Optional[str]:
        if file.host != "hub" or "/resolve/" not in file.path:
            return None
        return file.path.partition("/resolve/")[0]

    def read_directory(self, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The state dict of a transformers model directory, and the config fields its ``config.json`` tells
        besides the keys: ``class_names`` (``id2label``), a BEiT's ``feature_indices`` (its ``out_indices``) and
        ``backbone_norm_eps`` (its ``layer_norm_eps``)."""
        state, config = read_model_dir(path)
        layout.check_segformer_config(config)
        mask2former_layout.check_config(config)
        classifier = state.get("decode_head.classifier.weight", state.get("head.head.4.weight"))  # DPT's: head.head.4
        classes = None if classifier is None else int(classifier.shape[0])
        if mask2former_layout.CLASSIFIER in state:  # Mask2Former's: one more row, the no-object class
            classes = int(state[mask2former_layout.CLASSIFIER].shape[0]) - 1
        names = class_names_of(config, classes) if classes is not None else None
        return state, {**({"class_names": names} if names else {}), **layout.beit_fields(config),
                       **dpt_layout.dpt_fields(config)}
