"""DINOv2 (Meta) as an upstream: its segmentation heads' files and its backbones' (dl.fbaipublicfiles.com/dinov2;
``SEGZOO_DINOV2_URL`` sets a mirror), converted onto timm's ``vit_*_patch14_dinov2`` and the ``linear_probe`` head."""
from __future__ import annotations

from typing import Iterable, Mapping

from ...config import ModelConfig
from ...upstream import KeyRule, PretrainedSpec, Upstream, UpstreamFile
from ..base import Host, UpstreamPlugin
from . import layout
from .entries import ENTRIES

__all__ = ["DINOv2Upstream", "SOURCE"]

SOURCE = "dinov2"


class DINOv2Upstream(UpstreamPlugin):
    """DINOv2's linear and multi-scale segmentation heads (ADE20K, Pascal VOC 2012) on its ViTs."""

    name = SOURCE
    order = 4
    hosts = {"fbaipublicfiles": Host("SEGZOO_DINOV2_URL", "https://dl.fbaipublicfiles.com/dinov2")}
    license = "apache-2.0"
    terms = "DINOv2's Apache-2.0 licence (code and weights); the training data's terms apply."

    def entries(self) -> tuple[PretrainedSpec, ...]:
        return ENTRIES

    def offline_help(self, file: UpstreamFile, name: str) -> str:
        """Both files are needed: the head's and the backbone's."""
        return (f"download {name}'s head file and its backbone's (dinov2_<arch>_pretrain.pth) on a machine that can "
                f"reach them, run `segzoo convert --from dinov2 --model {name} HEAD.pth DIR --backbone-weights "
                f"PRETRAIN.pth` and load local-dir:DIR (or set SEGZOO_DINOV2_URL to a mirror that serves them)")

    def detect(self, keys: Iterable[str]) -> str:
        return layout.detect(keys)

    def rules(self, form: Upstream, config: ModelConfig, variant: str = layout.VARIANT) -> tuple[KeyRule, ...]:
        return layout.rules(form, config)

    def dropped(self, variant: str = layout.VARIANT) -> tuple[str, ...]:
        return layout.dropped()

    def prepare_for(self, state_dict: Mapping, config: ModelConfig, variant: str = layout.VARIANT) -> dict:
        """The final LayerNorm once per level the config normalises (``layout.with_level_norms``)."""
        return layout.with_level_norms(self.prepare(state_dict), config)

    def config_for(self, head: str, form: Upstream, backbone: str, num_classes: int, keys: Iterable[str] = (),
                   variant: str = layout.VARIANT) -> ModelConfig:
        """Meta's recipe for a head file converted without its zoo name: the last block or the last four, each
        normalised by the final LayerNorm, DINOv2's position resize and centre padding."""
        levels = form.options.get("levels", 1)
        return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, output_stride=32, aux=False,
                           head_kwargs=dict(form.options), align_corners=False, position_resize="dinov2",
                           patch_padding="center", feature_norms=("c1", "c2", "c3", "c4")[-levels:],
                           input_size=(512, 512) if levels == 1 else (640, 640))
