"""mmsegmentation's model zoo as segzoo zoo entries, generated from its facts (``mmseg_zoo.json``).

``mmseg_zoo.json`` lists mmsegmentation 1.2.2's trained checkpoints as its ``configs/*/metafile.yaml`` and configs
state them: name, dataset, single-scale and multi-scale + flip mIoU, the file's URL (its name ends in a sha256
prefix), the backbone (``ResNetV1c`` = timm's v1c, ``ResNet`` = v1b; dilations and strides) and the decode
head's options. Each head takes its entries with ``mmseg_pretrained("<mmseg head>")``; a checkpoint segzoo cannot
build exactly is left out, and ``left_out()`` says which and why.

Names follow timm's ``<architecture>.<tag>``: ``pspnet_resnet101c_d8.mmseg_cityscapes_80k`` is PSPNet on a
ResNet-101-v1c at output stride 8, trained by mmseg on Cityscapes for 80k iterations. The tag adds the crop when
it is not the dataset's usual one (``_769x769``) and what else tells two checkpoints apart (``_rsb``, ``_in1k_pre``).
``<architecture>.mmseg_<dataset>`` is the best checkpoint of that architecture on that dataset.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Optional

from ..backbones import contracted_dilations, resnet_style
from ..upstream import PretrainedSpec, UpstreamFile, hash_in_name

__all__ = ["mmseg_pretrained", "mmseg_spec", "left_out", "MMSEG_DATASETS", "BASE_URL"]

BASE_URL = "https://download.openmmlab.com/mmsegmentation/"
# mmseg 1.2.2's pspnet metafile mistypes the host of one file; every other file is under BASE_URL
_MISTYPED_HOSTS = ("https://download.oz1z1penmmlab.com/mmsegmentation/",)
# mmseg's dataset names -> segzoo's zoo dataset keys (segzoo.zoo.datasets holds their classes and palettes)
MMSEG_DATASETS = {
    "Cityscapes": "mmseg_cityscapes", "ADE20K": "mmseg_ade20k", "Pascal VOC 2012 + Aug": "mmseg_voc_aug",
    "Pascal Context": "mmseg_context", "Pascal Context 59": "mmseg_context59",
    "COCO-Stuff 164k": "mmseg_coco_stuff164k", "COCO-Stuff 10k": "mmseg_coco_stuff10k", "LoveDA": "mmseg_loveda",
    "Potsdam": "mmseg_potsdam", "Vaihingen": "mmseg_vaihingen", "iSAID": "mmseg_isaid",
}
# mmseg's decode heads segzoo builds: mmseg head -> (segzoo head, upstream form)
_HEADS = {"fcn": ("fcn", "fcn"), "pspnet": ("pspnet", "pspnet"), "deeplabv3": ("deeplabv3", "deeplabv3"),
          "danet": ("danet", "danet"), "ccnet": ("ccnet", "ccnet"), "bisenetv1": ("bisenet", "bisenetv1"),
          "deeplabv3plus": ("deeplabv3plus", "deeplabv3plus"), "upernet": ("upernet", "upernet")}
_STRIDES_TO_OUTPUT_STRIDE = {(1, 2, 1, 1): 8, (1, 2, 2, 1): 16, (1, 2, 2, 2): 32}
_NAME = re.compile(r"^(?P<arch>.+?)_(?P<gpus>\d+xb\d+)-(?P<extra>(?:[a-z0-9]+-)*?)(?P<schedule>\d+k)_"
                   r"(?P<data>[\w-]+?)-(?P<crop>\d+x\d+)$")
_TERMS = ("mmsegmentation's Apache-2.0 licence; the training data's terms apply (Cityscapes, ADE20K, Pascal, "
          "COCO-Stuff, LoveDA, ISPRS and iSAID each have their own, mostly research-only).")


@lru_cache(maxsize=None)
def _facts() -> tuple[dict, ...]:
    return tuple(json.loads(resources.files("segzoo.heads").joinpath("mmseg_zoo.json").read_text()))


@dataclass(frozen=True)
class _Backbone:
    architecture: str  # in the zoo name: resnet50c, resnet18c, resnet101c_d16_mg124 (with the output stride)
    timm_name: str
    kwargs: dict
    block_dilations: dict
    output_stride: int


def _backbone(record: dict) -> tuple[Optional[_Backbone], str]:
    """An mmseg ResNet record's backbone as segzoo builds it, or (None, why not)."""
    backbone = record["backbone"]
    if backbone.get("type") == "BiSeNetV1":  # its context path holds the ResNet
        backbone = backbone["backbone_cfg"]
    if backbone.get("type") not in ("ResNetV1c", "ResNet"):
        return None, f"backbone {backbone.get('type')} is not a ResNet segzoo builds yet"
    if tuple(backbone["strides"]) not in _STRIDES_TO_OUTPUT_STRIDE or backbone.get("contract_dilation") is False:
        return None, f"strides {backbone['strides']} (or dilations not contracted) are no structure segzoo builds"
    style = "c" if backbone["type"] == "ResNetV1c" else "b"
    timm_name, kwargs = resnet_style(backbone["depth"], style)
    output_stride = _STRIDES_TO_OUTPUT_STRIDE[tuple(backbone["strides"])]
    grid = backbone.get("multi_grid")
    architecture = (f"resnet{backbone['depth']}{'c' if style == 'c' else ''}_d{output_stride}"
                    + (f"_mg{''.join(map(str, grid))}" if grid else ""))
    dilations = contracted_dilations(backbone["depth"], backbone["dilations"], output_stride, grid)
    return _Backbone(architecture, timm_name, kwargs, dilations, output_stride), ""


def _options(record: dict, head: str) -> tuple[dict[str, Any], str]:
    """The entry's head options over its form's, or why the record cannot be built."""
    decode = record["decode_head"]
    if head == "bisenet":
        widths = record["backbone"]
        # mmseg's aux heads are half as wide as the context path (64 for R18's 128, 256 for R50's 512)
        context = widths["context_channels"][0]
        return {"spatial_channels": tuple(widths["spatial_channels"]), "context_channels": context,
                "fusion_channels": widths["out_channels"], "head_channels": decode["channels"],
                "aux_channels": context // 2}, ""
    if head == "fcn":
        return {"channels": decode["channels"], "num_convs": decode["num_convs"],
                "concat_input": decode["concat_input"]}, ""
    if head in ("deeplabv3", "deeplabv3plus"):
        rates = tuple(decode["dilations"])
        if rates[0] != 1:
            return {}, f"ASPP dilations {rates}: the first branch is not 1x1"
        options = {"channels": decode["channels"], "rates": rates[1:]}
        return ({**options, "c1_channels": decode["c1_channels"]} if head == "deeplabv3plus" else options), ""
    if head == "upernet":
        return {"channels": decode["channels"], "bins": tuple(decode["pool_scales"])}, ""
    quarter = decode["in_channels"] // 4  # PSPNet, DANet and CCNet are c4/4 wide in segzoo
    if decode["channels"] != quarter:
        return {}, f"{decode['channels']} head channels: segzoo's {head} head is c4/4 = {quarter} wide"
    if head == "pspnet":
        return {"bins": tuple(decode["pool_scales"])}, ""
    if head == "danet" and decode.get("pam_channels") != quarter // 8:
        return {}, f"{decode.get('pam_channels')} attention channels: segzoo's DANet uses c4/32"
    if head == "ccnet":
        return {"recurrence": decode["recurrence"]}, ""
    return {}, ""


# mmseg's test-time Resize per dataset: (long, short) bounds, aspect ratio kept (its configs' test pipelines;
# Cityscapes' 769x769 models use (2049, 1025))
_TEST_RESIZE = {"Cityscapes": (2048, 1024), "ADE20K": (2048, 512), "Pascal VOC 2012 + Aug": (2048, 512),
                "Pascal Context": (520, 520), "Pascal Context 59": (520, 520), "COCO-Stuff 164k": (2048, 512),
                "COCO-Stuff 10k": (2048, 512), "LoveDA": (1024, 1024), "Potsdam": (512, 512),
                "Vaihingen": (512, 512), "iSAID": (896, 896)}


def _inference(record: dict) -> dict[str, Any]:
    test_cfg = record["test_cfg"]
    resize = _TEST_RESIZE[record["dataset"]]
    if record["dataset"] == "Cityscapes" and record["name"].endswith("769x769"):
        resize = (2049, 1025)
    if test_cfg.get("mode") == "slide":
        return {"resize": resize, "mode": "slide", "crop": tuple(test_cfg["crop_size"]),
                "stride": tuple(test_cfg["stride"])}
    return {"resize": resize, "mode": "whole"}


@lru_cache(maxsize=None)
def _usual_crops() -> dict[str, str]:
    crops: dict[str, Counter] = {}
    for record in _facts():
        match = _NAME.match(record["name"])
        if match:
            crops.setdefault(record["dataset"], Counter())[match["crop"]] += 1
    return {dataset: counts.most_common(1)[0][0] for dataset, counts in crops.items()}


def mmseg_spec(record: dict, *, head_name: Optional[str] = None, usual_crop: Optional[str] = None
               ) -> tuple[Optional[PretrainedSpec], str]:
    """The zoo entry of one checkpoint record of ``mmseg_zoo.json`` (its format), or (None, why it is left out).

    Args:
        record: The checkpoint's facts.
        head_name: The registered head name the entry's name starts with (default segzoo's own head for the
            record's mmseg head; a plug-in subclassing that head passes its own).
        usual_crop: The dataset's usual training crop (``"512x1024"``), left out of the tag; default that of
            mmseg's zoo.
    """
    name, mmseg_head = record["name"], record["head"]
    if mmseg_head not in _HEADS:
        return None, f"segzoo has no {mmseg_head} head in mmseg's form yet"
    if record["dataset"] not in MMSEG_DATASETS:
        return None, f"dataset {record['dataset']!r}: its class list does not match the checkpoint"
    head, variant = _HEADS[mmseg_head]
    if name.startswith("fcn-d6"):
        variant = "fcn_d6"
    backbone, why = _backbone(record)
    options, why_not = _options(record, head) if backbone else ({}, "")
    match = _NAME.match(name)
    if not backbone or why_not or not match:
        return None, why or why_not or "its name does not follow mmseg's naming scheme"
    url = record["weights"]
    for mistyped in _MISTYPED_HOSTS:
        url = BASE_URL + url[len(mistyped):] if url.startswith(mistyped) else url
    if not url.startswith(BASE_URL):
        return None, f"its file is not on mmseg's download server: {url}"
    dataset = MMSEG_DATASETS[record["dataset"]]
    # what tells two checkpoints of one architecture apart besides dataset, schedule and crop: "rsb" (a ResNet
    # strikes back backbone), "in1k-pre" (ImageNet-pretrained), "adamw", "amp"
    arch_parts = match["arch"].split("_")
    backbone_token = re.match(r"r\d+b?-d\d+(?:-mg\d+)?-?(?P<rest>.*)", arch_parts[1]) if len(arch_parts) > 1 else None
    extras = ([backbone_token["rest"].replace("-", "_")] if backbone_token and backbone_token["rest"] else []) \
        + arch_parts[2:] + [part for part in match["extra"].split("-") if part]
    usual_crop = usual_crop or _usual_crops()[record["dataset"]]
    crop = "" if match["crop"] == usual_crop else f"_{match['crop']}"
    tag = f"{dataset}_{match['schedule']}{crop}" + "".join(f"_{part}" for part in extras)
    architecture = f"{head_name or head}{'_d6' if variant == 'fcn_d6' else ''}_{backbone.architecture}"
    file_path = url[len(BASE_URL):]
    inference = _inference(record)
    return PretrainedSpec(
        name=f"{architecture}.{tag}", upstream="mmseg", variant=variant, backbone=backbone.timm_name,
        backbone_kwargs=backbone.kwargs, block_dilations=backbone.block_dilations,
        dataset=dataset, output_stride=backbone.output_stride, aux=bool(record["has_auxiliary_head"]),
        align_corners=bool(record["decode_head"]["align_corners"]),
        file=UpstreamFile("openmmlab", file_path, hash_in_name(file_path.rsplit("/", 1)[-1])),
        license="apache-2.0", terms=_TERMS, options=options, carry_palette=True, inference=inference,
        metrics={"mIoU": record["mIoU"], "mIoU_ms_flip": record.get("mIoU_ms_flip"),
                 "eval": f"single scale ({inference['mode']})"},
        metrics_source=f"mmsegmentation 1.2.2's metafile for {record['config']} ({name})"), ""


@lru_cache(maxsize=None)
def _generate() -> tuple[dict[str, list[PretrainedSpec]], tuple[tuple[str, str], ...]]:
    """(entries per mmseg head, (checkpoint, why left out) pairs)."""
    specs: dict[str, list[PretrainedSpec]] = {}
    skipped: list[tuple[str, str]] = []
    names = Counter(record["name"] for record in _facts())
    for record in _facts():
        name = record["name"]
        if names[name] > 1 and not _named_after(record) and record["head"] in _HEADS:
            # mmseg's metafile lists two files under one name; the one named after another config is left out
            skipped.append((name, f"mmseg lists {record['weights'].rsplit('/', 1)[-1]} under this name too, a file "
                                  "named after another config; only the file named after this one is kept"))
            continue
        spec, why = mmseg_spec(record)
        if spec is None:
            skipped.append((name, why))
        else:
            specs.setdefault(record["head"], []).append((spec, _NAME.match(name)["gpus"]))
    return _with_short_names(_batch_told_apart(specs)), tuple(skipped)


def _named_after(record: dict) -> bool:
    """Whether the record's file is named after its config: the architecture and the schedule of its name (mmseg's
    metafile lists some files under another config's name)."""
    file_name = record["weights"].rsplit("/", 1)[-1].replace("-", "_")
    match = _NAME.match(record["name"])
    return (record["name"].split("_4x")[0].replace("-", "_") in file_name
            and (match is None or f"_{match['schedule']}_" in file_name))


def _batch_told_apart(specs: dict[str, list[tuple[PretrainedSpec, str]]]) -> dict[str, list[PretrainedSpec]]:
    """Checkpoints that differ only in their batch (BiSeNetV1's 4xb4 and 4xb8) get it in their tag."""
    import dataclasses

    counts = Counter(spec.name for entries in specs.values() for spec, _ in entries)
    return {head: [dataclasses.replace(spec, name=f"{spec.name}_{gpus}") if counts[spec.name] > 1 else spec
                   for spec, gpus in entries] for head, entries in specs.items()}


def _with_short_names(specs: dict[str, list[PretrainedSpec]]) -> dict[str, list[PretrainedSpec]]:
    """``<architecture>.mmseg_<dataset>`` on the best single-scale checkpoint of each architecture and dataset."""
    import dataclasses

    best: dict[str, PretrainedSpec] = {}
    for spec in (spec for entries in specs.values() for spec in entries):
        short = f"{spec.name.split('.')[0]}.{spec.dataset}"
        if short not in best or (spec.metrics["mIoU"] or 0) > (best[short].metrics["mIoU"] or 0):
            best[short] = spec
    chosen = {spec.name: short for short, spec in best.items()}
    return {head: [dataclasses.replace(spec, short_names=(chosen[spec.name],)) if spec.name in chosen else spec
                   for spec in entries] for head, entries in specs.items()}


def mmseg_pretrained(mmseg_head: str) -> tuple[PretrainedSpec, ...]:
    """The zoo entries of one of mmseg's heads (``"pspnet"``, ``"deeplabv3"``, ...)."""
    return tuple(_generate()[0].get(mmseg_head, ()))


def left_out() -> tuple[tuple[str, str], ...]:
    """mmseg's checkpoints of segzoo's heads that have no entry, each with the reason."""
    return _generate()[1]
