"""mmsegmentation as an upstream: its files (download.openmmlab.com, the sha256 prefix in each name), its
catalogue of checkpoints (``zoo.json``, turned into entries by ``catalogue``), the datasets they were trained on
(``datasets.json``: classes, palette, evaluation split and size, test-time resize), its licence and its
checkpoint layout (``layout``)."""
from __future__ import annotations

from typing import Iterable, Mapping

from ...config import ModelConfig
from ...upstream import KeyRule, PretrainedSpec, Upstream
from ..base import Host, UpstreamPlugin, ZooDataset
from . import layout, transformer_layout
from .catalogue import BASE_URL, SOURCE, catalogue_entries, datasets, left_out, mmseg_spec, records
from .dpt_entries import dpt_entries
from .segformer_entries import segformer_entries
from .segmenter_entries import segmenter_entries
from .setr_entries import setr_entries
from .transformer_entries import transformer_entries

__all__ = ["MMSegUpstream", "BASE_URL", "SOURCE", "mmseg_spec", "left_out", "records"]


class MMSegUpstream(UpstreamPlugin):
    """mmsegmentation 1.2.2's model zoo."""

    name = SOURCE
    order = 2
    # paths keep mmseg's folders (v0.5/pspnet/<config>/<file>.pth)
    hosts = {"openmmlab": Host("SEGZOO_OPENMMLAB_URL", BASE_URL)}
    license = "apache-2.0"
    terms = ("mmsegmentation's Apache-2.0 licence; the training data's terms apply (Cityscapes, ADE20K, Pascal, "
             "COCO-Stuff, LoveDA, ISPRS and iSAID each have their own, mostly research-only).")

    def datasets(self) -> dict[str, ZooDataset]:
        return datasets()

    def entries(self) -> tuple[PretrainedSpec, ...]:
        """The transformer-era checkpoints, declared one by one: UPerNet (Swin, ConvNeXt, BEiT, MAE, ViT / DeiT),
        SegFormer (MiT), Segmenter and SETR (ViT)."""
        return transformer_entries() + segformer_entries() + segmenter_entries() + setr_entries() + dpt_entries()

    def catalogue(self, head: str, head_class: type) -> tuple[PretrainedSpec, ...]:
        return catalogue_entries(head, head_class)

    def detect(self, keys: Iterable[str]) -> str:
        return layout.detect(keys)

    def infer_backbone(self, keys: Iterable[str], variant: str = SOURCE) -> str:
        return layout.infer_backbone(keys, variant)

    def rules(self, form: Upstream, config: ModelConfig, variant: str = SOURCE) -> tuple[KeyRule, ...]:
        return layout.rules(form, config, variant)

    def dropped(self, variant: str = SOURCE) -> tuple[str, ...]:
        return layout.dropped(variant)

    def prepare(self, state_dict: Mapping) -> dict:
        return layout.prepare(state_dict)

    def prepare_for(self, state_dict: Mapping, config: ModelConfig, variant: str = SOURCE) -> dict:
        """``prepare``; a ViT converted to a timm ViT without a class token (``backbone_kwargs`` ``class_token=False``:
        SETR-MLA's, whose blocks never see the token) loses the token and its position embedding."""
        out = self.prepare(state_dict)
        if variant == transformer_layout.VIT and config.backbone_kwargs.get("class_token") is False:
            out = transformer_layout.without_class_token(out)
        return out

    def config_for(self, head: str, form: Upstream, backbone: str, num_classes: int, keys: Iterable[str] = (),
                   variant: str = SOURCE) -> ModelConfig:
        return layout.config_for(head, form, backbone, num_classes, keys, variant)
