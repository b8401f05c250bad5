"""Full-size parity of segzoo's transformers upstream, run by hand in a scratch environment with transformers:

    PYTHONPATH=. /tmp/up-venv/bin/python maintainers/transformers_parity.py [--sizes 97x131 512x512]

For each architecture of the zoo's transformers entries (UPerNet on ConvNeXt-T and Swin-T at window 7, Swin-B at
window 12, at their real sizes, transformers' random initialisation with BatchNorm statistics randomised), it saves
the model with transformers' own ``save_pretrained`` (config.json + model.safetensors), converts that directory with
``segzoo convert``'s code, and prints the largest logit difference relative to the logits' scale. The committed
parity test (tests/upstreams/test_transformers_parity.py) runs small forms of the same models in seconds.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch


def _models():
    from transformers import ConvNextConfig, SwinConfig, UperNetConfig

    stages = ["stage1", "stage2", "stage3", "stage4"]
    return {
        "upernet-convnext-tiny": UperNetConfig(backbone_config=ConvNextConfig(
            hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3], out_features=stages), num_labels=150,
            auxiliary_in_channels=384),
        "upernet-swin-tiny": UperNetConfig(backbone_config=SwinConfig(
            embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7, out_features=stages),
            num_labels=150, auxiliary_in_channels=384),
        "upernet-swin-base": UperNetConfig(backbone_config=SwinConfig(
            embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12, out_features=stages),
            num_labels=150, auxiliary_in_channels=512),
    }


def main() -> None:
    from transformers import UperNetForSemanticSegmentation

    from segzoo import create_model
    from segzoo.weights.convert import convert_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["97x131", "512x512"])
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes]
    torch.manual_seed(0)
    for name, config in _models().items():
        model = UperNetForSemanticSegmentation(config).eval()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(Path(tmp) / "hf")
            report = convert_file(Path(tmp) / "hf", Path(tmp) / "segzoo", source="transformers")
            ours = create_model(f"local-dir:{Path(tmp) / 'segzoo'}")
        for height, width in sizes:
            images = torch.randn(1, 3, height, width)
            with torch.no_grad():
                expected = model(pixel_values=images).logits
                actual = ours(images)
            scale = float(expected.abs().max())
            difference = float((actual - expected).abs().max())
            print(f"{name} ({report.config.backbone}) {height}x{width}: max |diff| {difference:.3g}, "
                  f"{difference / scale:.2e} of the logits' scale {scale:.3g}")


if __name__ == "__main__":
    main()
