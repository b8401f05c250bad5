"""Reference outputs of transformers' own ``UperNetForSemanticSegmentation`` (ConvNeXt and Swin backbones),
``BeitForSemanticSegmentation``, ``SegformerForSemanticSegmentation``, ``DPTForSemanticSegmentation`` and
``Mask2FormerForUniversalSegmentation`` (Swin), for
segzoo's parity tests (tests/upstreams/test_transformers_parity.py).

NOT part of the segzoo package or its test run: run it once, by hand, with the python of a SCRATCH environment
that has transformers in it (transformers is never a dependency of segzoo):

    python3 -m venv /tmp/up-venv && /tmp/up-venv/bin/pip install "transformers<5" torch numpy
    /tmp/up-venv/bin/python tests/reference_data/transformers/make_reference.py

(As run: transformers 4.57.6, torch 2.14.1; versions.json records them.) It writes, beside itself, reference.npz
(the logits at every 4th pixel of every 4th row, 16th at 512x512, float32: small to commit, and a wrong structure
still fails by far) and models.json.gz (each case's transformers config and its state-dict layout: key, shape,
dtype, in order). The inputs are seeded too (``seeded_value("<case>/input/<h>x<w>", ...) * 0.5``). The weights are
NOT stored: every entry is ``seeded_value(key, shape, dtype)`` from tests/support/seeded_weights.py (the
relative-position index buffers keep transformers' own values; segzoo drops them), which the test side calls again
on the same layout. The models are small forms of the real ones (fewer channels and blocks) so the test runs in
seconds: every code path of the full models is in them, the Swin cases at window 7 and window 12 (the base and large
repos' window), a BEiT at its own grid (64x64), a SegFormer (MiT) also at the ADE20K training crop (512x512) and a
DPT (as Intel/dpt-large-ade: readout "project", BatchNorms in the fusion) at sizes that are multiples of its patch
(transformers' ViT drops a partial patch, segzoo's pads it, as mmseg's), square (its semantic model reshapes
tokens to a square grid), and at DPT's ADE20K crop (480x480);
transformers' 1/4-size logits of BEiT and SegFormer are upsampled to the input, bilinear, align_corners=False.
Mask2Former's reference is its semantic scores at the input's size: the class probabilities (softmax, the no-object
class dropped) times the sigmoid of the mask logits upsampled to the input (bilinear, align_corners=False), summed over
the queries, as mmseg's and transformers' semantic post-processing compute them (transformers' own
post_process_semantic_segmentation resizes the masks to 384x384 first, then the scores to the target size)."""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SEEDED = HERE.parents[1] / "support" / "seeded_weights.py"
SIZES = [(97, 131), (128, 128)]


def _seeded():
    spec = importlib.util.spec_from_file_location("seeded_weights", SEEDED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.seeded_value


def _cases():
    from transformers import (
        BeitConfig,
        ConvNextConfig,
        DPTConfig,
        Mask2FormerConfig,
        SegformerConfig,
        SwinConfig,
        UperNetConfig,
    )

    stages = ["stage1", "stage2", "stage3", "stage4"]
    return {
        "convnext": UperNetConfig(backbone_config=ConvNextConfig(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1],
                                                                 out_features=stages),
                                  hidden_size=32, auxiliary_in_channels=64, num_labels=3),
        "swin_window7": UperNetConfig(backbone_config=SwinConfig(embed_dim=32, depths=[2, 2, 2, 2],
                                                                 num_heads=[1, 2, 4, 8], window_size=7,
                                                                 out_features=stages),
                                      hidden_size=32, auxiliary_in_channels=128, num_labels=3),
        "swin_window12": UperNetConfig(backbone_config=SwinConfig(embed_dim=32, depths=[2, 2, 2, 2],
                                                                  num_heads=[1, 2, 4, 8], window_size=12,
                                                                  out_features=stages),
                                       hidden_size=32, auxiliary_in_channels=128, num_labels=3),
        # BEiT as microsoft/beit-*-finetuned-ade-640-640 (relative position bias per block, layer scale, default
        # out_indices [3, 5, 7, 11]), narrow and at a 64x64 grid of 16-pixel patches
        "beit": BeitConfig(image_size=64, hidden_size=32, num_hidden_layers=12, num_attention_heads=2,
                           intermediate_size=64, use_relative_position_bias=True,
                           use_absolute_position_embeddings=False, layer_scale_init_value=0.1,
                           out_indices=[3, 5, 7, 11], auxiliary_channels=16, num_labels=3,
                           architectures=["BeitForSemanticSegmentation"]),
        # SegFormer as nvidia/segformer-b*: MiT with every stage's reduction ratio, narrow and shallow
        "segformer": SegformerConfig(hidden_sizes=[16, 32, 40, 64], depths=[1, 2, 1, 1],
                                     num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1],
                                     mlp_ratios=[4, 4, 4, 4], decoder_hidden_size=32,
                                     num_labels=3, architectures=["SegformerForSemanticSegmentation"]),
        # DPT as Intel/dpt-large-ade, narrow and shallow: a ViT (one head per 64 channels, as every DPT; the weights
        # do not tell the heads) at a 4x4 grid of 16-pixel patches (its position embedding resized bilinearly at
        # other sizes), four levels from blocks 2, 4, 6, 8
        "dpt": DPTConfig(hidden_size=64, num_hidden_layers=8, num_attention_heads=1, intermediate_size=128,
                         image_size=64, patch_size=16, backbone_out_indices=[1, 3, 5, 7], readout_type="project",
                         neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                         use_batch_norm_in_fusion_residual=True, num_labels=3,
                         architectures=["DPTForSemanticSegmentation"]),
        # Mask2Former as facebook/mask2former-swin-*-semantic, narrow and shallow: a Swin at window 7, the pixel
        # decoder's deformable attention (2 layers, 4 heads) and 4 masked-attention layers (every level once, c4 twice:
        # decoder_layers counts the prediction before the first layer), 10 queries
        "mask2former": Mask2FormerConfig(
            backbone_config=SwinConfig(embed_dim=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=7,
                                       out_features=stages),
            hidden_dim=32, feature_size=32, mask_feature_size=32, num_queries=10, decoder_layers=5, encoder_layers=2,
            dim_feedforward=64, encoder_feedforward_dim=48, num_attention_heads=4, num_labels=3,
            architectures=["Mask2FormerForUniversalSegmentation"]),
    }


def _semantic_scores(outputs, size):
    """Mask2Former's per-class scores at ``size`` from its last prediction (see the module's docstring)."""
    classes = outputs.class_queries_logits.softmax(-1)[..., :-1]
    masks = torch.nn.functional.interpolate(outputs.masks_queries_logits, size=size, mode="bilinear",
                                            align_corners=False).sigmoid()
    return torch.einsum("bqc,bqhw->bchw", classes, masks)


def main() -> None:
    import transformers
    from transformers import (
        BeitForSemanticSegmentation,
        ConvNextConfig,
        DPTConfig,
        DPTForSemanticSegmentation,
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SwinConfig,
        UperNetConfig,
        UperNetForSemanticSegmentation,
    )

    classes = {"beit": BeitForSemanticSegmentation, "segformer": SegformerForSemanticSegmentation,
               "dpt": DPTForSemanticSegmentation, "mask2former": Mask2FormerForUniversalSegmentation}
    sizes = {"beit": [(64, 64)], "segformer": SIZES + [(512, 512)], "dpt": [(128, 128), (480, 480)]}

    seeded_value = _seeded()
    arrays, models = {}, {}
    for name, config in _cases().items():
        model = classes.get(name, UperNetForSemanticSegmentation)(config).eval()
        state = model.state_dict()
        filled = {key: value if key.endswith("relative_position_index") else
                  torch.from_numpy(seeded_value(key, tuple(value.shape), str(value.dtype).replace("torch.", "")))
                  for key, value in state.items()}
        model.load_state_dict(filled)
        models[name] = {"config": config.to_dict(),
                        "layout": [[key, list(value.shape), str(value.dtype).replace("torch.", "")]
                                   for key, value in state.items() if not key.endswith("relative_position_index")]}
        for height, width in sizes.get(name, SIZES):
            # a fresh model per size: transformers' Swin keeps the window it shrank to (not here: always_partition)
            images = torch.from_numpy(seeded_value(f"{name}/input/{height}x{width}", (1, 3, height, width)) * 0.5)
            with torch.no_grad():
                outputs = model(pixel_values=images)
            if name == "mask2former":
                logits = _semantic_scores(outputs, (height, width))
            else:
                # transformers' BEiT and SegFormer give logits at 1/4 size: upsampled as their losses and mmseg do
                logits = torch.nn.functional.interpolate(outputs.logits, size=(height, width), mode="bilinear",
                                                         align_corners=False)
            step = 16 if height >= 512 else 4  # every step-th pixel of every step-th row: a small file
            arrays[f"{name}/{height}x{width}"] = logits[..., ::step, ::step].numpy()
    # the full-size layout of openmmlab/upernet-convnext-tiny (keys and shapes only), for the zoo entry's download
    # test in the slow tier
    full = UperNetForSemanticSegmentation(UperNetConfig(
        backbone_config=ConvNextConfig(hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3],
                                       out_features=["stage1", "stage2", "stage3", "stage4"]),
        num_labels=150, auxiliary_in_channels=384))
    models["upernet-convnext-tiny"] = {
        "config": full.config.to_dict(),
        "layout": [[key, list(value.shape), str(value.dtype).replace("torch.", "")]
                   for key, value in full.state_dict().items()]}
    # the full-size layouts of nvidia/segformer-b0-finetuned-ade-512-512 and -b2- (keys and shapes only): the
    # zoo entries' conversion test; B2 .. B5 have a 768-wide head
    for size, hidden, depths, width in (("b0", [32, 64, 160, 256], [2, 2, 2, 2], 256),
                                         ("b2", [64, 128, 320, 512], [3, 4, 6, 3], 768)):
        full = SegformerForSemanticSegmentation(SegformerConfig(hidden_sizes=hidden, depths=depths,
                                                                decoder_hidden_size=width, num_labels=150))
        models[f"segformer-{size}"] = {
            "config": full.config.to_dict(),
            "layout": [[key, list(value.shape), str(value.dtype).replace("torch.", "")]
                       for key, value in full.state_dict().items()]}
    # the full-size layout of Intel/dpt-large-ade (keys and shapes only): the zoo entry's conversion test
    full = DPTForSemanticSegmentation(DPTConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, image_size=384,
        backbone_out_indices=[5, 11, 17, 23], readout_type="project", neck_hidden_sizes=[256, 512, 1024, 1024],
        use_batch_norm_in_fusion_residual=True, num_labels=150, architectures=["DPTForSemanticSegmentation"]))
    models["dpt-large-ade"] = {
        "config": full.config.to_dict(),
        "layout": [[key, list(value.shape), str(value.dtype).replace("torch.", "")]
                   for key, value in full.state_dict().items()]}
    # the full-size layout of facebook/mask2former-swin-tiny-ade-semantic (keys and shapes only): the zoo entry's
    # conversion test (transformers' conversion script builds Swin-T at window 7 and Mask2Former's defaults: 100
    # queries, 10 decoder predictions, 6 deformable layers, 256 wide)
    full = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(
        backbone_config=SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                                   out_features=["stage1", "stage2", "stage3", "stage4"]),
        num_labels=150, architectures=["Mask2FormerForUniversalSegmentation"]))
    models["mask2former-swin-tiny-ade"] = {
        "config": full.config.to_dict(),
        "layout": [[key, list(value.shape), str(value.dtype).replace("torch.", "")]
                   for key, value in full.state_dict().items()]}
    np.savez_compressed(HERE / "reference.npz", **arrays)
    with gzip.open(HERE / "models.json.gz", "wt", encoding="utf-8") as file:
        json.dump(models, file, default=str)
    (HERE / "versions.json").write_text(json.dumps({"transformers": transformers.__version__,
                                                    "torch": torch.__version__, "numpy": np.__version__},
                                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
