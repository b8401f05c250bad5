"""SegFormer's Mix Transformer encoders (MiT-B0 .. B5) as timm models ``mit_b0`` .. ``mit_b5``.

timm has no MiT, but it has its twin: PVT v2 (``timm.models.pvt_v2``) is the same network (overlapping patch
embeddings, attention over a spatially reduced key/value, a feed-forward with a 3x3 depthwise convolution, a
LayerNorm ending each stage) with wider feed-forwards in B0 .. B4 (``mlp_ratios`` 8, 8, 4, 4 where MiT has 4
throughout). So MiT is timm's ``PyramidVisionTransformerV2`` with MiT's sizes, registered in timm's model registry
under MiT's names when segzoo first uses timm (``import_timm``): every timm feature of it (``features_only``, any
input size, its module and key names) is timm's own. Its LayerNorm epsilons are the SegFormer authors' (1e-6 in the
blocks and after each stage, PyTorch's 1e-5 in the patch embeddings and the key/value reduction); mmsegmentation's
and transformers' ports differ in places, which their zoo entries set (``ModelConfig.backbone_norm_eps``). There
are no ImageNet weights under these names: segzoo's MiT models come from trained SegFormer checkpoints.
"""
from __future__ import annotations

from types import ModuleType

__all__ = ["MIT_SIZES", "import_timm"]

# name -> (blocks per stage, channels per stage); every size has 1, 2, 5, 8 heads and reduction ratios 8, 4, 2, 1
MIT_SIZES = {
    "mit_b0": ((2, 2, 2, 2), (32, 64, 160, 256)),
    "mit_b1": ((2, 2, 2, 2), (64, 128, 320, 512)),
    "mit_b2": ((3, 4, 6, 3), (64, 128, 320, 512)),
    "mit_b3": ((3, 4, 18, 3), (64, 128, 320, 512)),
    "mit_b4": ((3, 8, 27, 3), (64, 128, 320, 512)),
    "mit_b5": ((3, 6, 40, 3), (64, 128, 320, 512)),
}
_registered = False
default_cfgs: dict = {}  # timm's register_model reads the pretrained configs of a module from this name


def _entrypoint(name: str, depths: tuple[int, ...], dims: tuple[int, ...]):
    from timm.models import build_model_with_cfg
    from timm.models.pvt_v2 import PyramidVisionTransformerV2, checkpoint_filter_fn

    def build(pretrained: bool = False, **kwargs):
        out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
        args = dict(depths=depths, embed_dims=dims, num_heads=(1, 2, 5, 8), sr_ratios=(8, 4, 2, 1),
                    mlp_ratios=(4, 4, 4, 4))
        return build_model_with_cfg(PyramidVisionTransformerV2, name, pretrained,
                                    pretrained_filter_fn=checkpoint_filter_fn,
                                    feature_cfg=dict(flatten_sequential=True, out_indices=out_indices),
                                    **dict(args, **kwargs))

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"SegFormer's {name.upper().replace('_', '-')} encoder (timm's PVT v2 at MiT's sizes)."
    return build


def import_timm() -> ModuleType:
    """timm, with segzoo's MiT models in its registry (registered on the first call)."""
    global _registered
    import timm

    if not _registered:
        from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
        from timm.models import register_model

        for name, (depths, dims) in MIT_SIZES.items():
            default_cfgs[name] = {"url": "", "num_classes": 1000, "input_size": (3, 224, 224),
                                  "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
                                  "first_conv": "patch_embed.proj", "classifier": "head"}
            if not timm.is_model(name):  # never replace a model timm itself may add under the name
                register_model(_entrypoint(name, depths, dims))
        _registered = True
    return timm
