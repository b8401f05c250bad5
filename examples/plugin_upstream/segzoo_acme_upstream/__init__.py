"""ACME's own trained checkpoints as a segzoo upstream (an example third-party ``segzoo.upstreams`` plug-in)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from segzoo.errors import CheckpointError
from segzoo.upstream import PretrainedSpec, Upstream, UpstreamFile
from segzoo.upstreams import Host, UpstreamPlugin, ZooDataset
from segzoo.upstreams.http import http_download

__all__ = ["AcmeUpstream"]

_ROADS_PALETTE = np.array([(0, 0, 0), (128, 64, 128), (255, 255, 255)], dtype=np.uint8)


class AcmeUpstream(UpstreamPlugin):
    """ACME's segmentation models, trained with segzoo's FCN in ACME's own training loop."""

    name = "acme"
    hosts = {"acme": Host("ACME_MODELS_URL", "https://models.acme.example/segzoo/")}
    license = "other"
    terms = "ACME internal licence: for ACME's products and their evaluation only."
    # ACME's checkpoints keep segzoo's own module names under "net." (its training wrapper)
    head_forms = {"fcn": (Upstream("acme", "fcn", rules=((r"net\.head", "head"),),
                                   classifier="net.head.fcn.classifier.weight"),)}

    def transfer(self, file: UpstreamFile, target: Path, *, name: str, progress: bool) -> str:
        """ACME's download and integrity rule: every file has its whole sha256 published beside it
        (``<file>.sha256``, as ``sha256sum`` writes it); that is fetched first, then the file, then compared."""
        sidecar = target.with_name(target.name + ".sha256")
        try:
            http_download(self.file_url(file) + ".sha256", sidecar, name, progress=False)
            published = sidecar.read_text().split()[0]
        finally:
            sidecar.unlink(missing_ok=True)
        sha256 = super().transfer(file, target, name=name, progress=progress)
        if sha256 != published:
            raise CheckpointError(f"{name}: {file.path} has sha256 {sha256}, but ACME publishes {published}; "
                                  f"nothing was kept")
        return sha256

    def rules(self, form: Upstream, config, variant: str):
        return ((r"net\.backbone", "backbone"), (r"net\.aux_head", "aux_head")) + form.rules

    def dropped(self, variant: str) -> tuple[str, ...]:
        return (r"ema",)  # the training loop's EMA copy is not the released model

    def datasets(self) -> dict[str, ZooDataset]:
        roads = ZooDataset("acme_roads", "ACME roads val", (512, 1024), ("background", "road", "lane marking"),
                           _ROADS_PALETTE.copy, "acme/roads", "ACME's recipe: SGD, poly schedule, 40k iterations.",
                           test_resize=(2048, 1024))
        return {roads.key: roads}

    def entries(self) -> tuple[PretrainedSpec, ...]:
        return (PretrainedSpec(name="fcn_resnet18.acme_roads", head="fcn", upstream="acme", variant="fcn",
                               backbone="resnet18", dataset="acme_roads", output_stride=8, aux=True,
                               align_corners=False, carry_palette=True,
                               file=UpstreamFile("acme", "roads/fcn_resnet18_roads.pth"),
                               inference={"resize": (2048, 1024), "mode": "whole"},
                               metrics={"mIoU": 71.2, "eval": "single scale"},
                               metrics_source="ACME's evaluation report"),)

    def base_model(self, spec: PretrainedSpec) -> str:
        return f"timm/{spec.backbone}.a1_in1k"

