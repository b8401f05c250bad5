"""mmsegmentation's model zoo as segzoo zoo entries, generated from its facts (``zoo.json``).

``zoo.json`` lists mmsegmentation 1.2.2's trained checkpoints as its ``configs/*/metafile.yaml`` and configs state
them: name, dataset, single-scale and multi-scale + flip mIoU, the file's URL (its name ends in a sha256 prefix),
the backbone (``ResNetV1c`` = timm's v1c, ``ResNet`` = v1b; dilations and strides) and the decode head's options.
A head opts in with ``FromCatalogue("mmseg")``; its ``Upstream("mmseg", ...)`` forms say which records are theirs
(``catalogue``: the architecture mmseg's model names start with) and map each record's options to the head's
(``adapter``). A checkpoint segzoo cannot build exactly is left out, and ``left_out()`` says which and why.

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

import numpy as np

from ...backbones import contracted_dilations, resnet_style
from ...registry import list_heads
from ...upstream import FromCatalogue, PretrainedSpec, Upstream, UpstreamFile, hash_in_name
from ..base import ZooDataset

__all__ = ["mmseg_spec", "catalogue_entries", "left_out", "datasets", "records", "BASE_URL", "SOURCE"]

SOURCE = "mmseg"
BASE_URL = "https://download.openmmlab.com/mmsegmentation/"
# mmseg 1.2.2's pspnet metafile mistypes the host of one file; every other file is under BASE_URL
_MISTYPED_HOSTS = ("https://download.oz1z1penmmlab.com/mmsegmentation/",)
_STRIDES_TO_OUTPUT_STRIDE = {(1, 2, 1, 1): 8, (1, 2, 2, 1): 16, (1, 2, 2, 2): 32}
_NAME = re.compile(r"^(?P<arch>.+?)_(?P<gpus>\d+xb\d+)-(?P<extra>(?:[a-z0-9]+-)*?)(?P<schedule>\d+k)_"
                   r"(?P<data>[\w-]+?)-(?P<crop>\d+x\d+)$")
_RECIPE = ("mmsegmentation's recipe for {name} (its config of the model: SGD, poly schedule, aux loss weight 0.4, "
           "SyncBN, random scale 0.5-2.0, crop, flip, photometric distortion).")


@lru_cache(maxsize=None)
def records() -> tuple[dict, ...]:
    """mmseg's checkpoint records (``zoo.json``)."""
    return tuple(json.loads(resources.files(__package__).joinpath("zoo.json").read_text()))


@lru_cache(maxsize=None)
def _dataset_facts() -> dict[str, dict]:
    """mmseg's datasets by the name its model zoo uses: classes and palette as its dataset classes define them,
    the split its zoo reports, the evaluation size, the Hub id, the test-time resize (``datasets.json``)."""
    return json.loads(resources.files(__package__).joinpath("datasets.json").read_text())


def datasets() -> dict[str, ZooDataset]:
    """The zoo datasets of mmseg's checkpoints, by key (``mmseg_cityscapes``, ...)."""
    found = {}
    for name, facts in _dataset_facts().items():
        if facts["key"] is None:  # a dataset whose checkpoints segzoo leaves out (see "left_out")
            continue
        palette = np.asarray(facts["palette"], dtype=np.uint8)
        found[facts["key"]] = ZooDataset(
            facts["key"], facts["eval_split"], tuple(facts["input_size"]), tuple(facts["classes"]),
            lambda palette=palette: palette.copy(), facts["hub_id"], _RECIPE.format(name=name),
            tuple(facts["test_resize"]))
    return found


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


def _inference(record: dict) -> dict[str, Any]:
    test_cfg = record["test_cfg"]
    resize = tuple(_dataset_facts()[record["dataset"]]["test_resize"])
    if record["dataset"] == "Cityscapes" and record["name"].endswith("769x769"):
        resize = (2049, 1025)
    if test_cfg.get("mode") == "slide":
        return {"resize": resize, "mode": "slide", "crop": tuple(test_cfg["crop_size"]),
                "stride": tuple(test_cfg["stride"])}
    return {"resize": resize, "mode": "whole"}


@lru_cache(maxsize=None)
def _usual_crops() -> dict[str, str]:
    crops: dict[str, Counter] = {}
    for record in records():
        match = _NAME.match(record["name"])
        if match:
            crops.setdefault(record["dataset"], Counter())[match["crop"]] += 1
    return {dataset: counts.most_common(1)[0][0] for dataset, counts in crops.items()}


def _architecture(record: dict) -> str:
    """The architecture mmseg's model name starts with (``fcn``, ``fcn-d6``, ``bisenetv1``): a form's
    ``catalogue``."""
    return record["name"].split("_", 1)[0]


def _form(head_class: type, record: dict) -> tuple[Optional[Upstream], dict[str, Any], str]:
    """The head's mmseg form for this record and the record's head options, or (None, {}, why not)."""
    forms = [form for form in getattr(head_class, "upstreams", ())
             if form.source == SOURCE and form.catalogue == _architecture(record)]
    if not forms:
        return None, {}, f"segzoo has no {record['head']} head in mmseg's form yet"
    form = forms[0]
    options, why = form.adapter(record) if form.adapter else ({}, "")
    return form, options, why


def mmseg_spec(record: dict, head_name: str, head_class: type, *, usual_crop: Optional[str] = None
               ) -> tuple[Optional[PretrainedSpec], str]:
    """The zoo entry of one checkpoint record of ``zoo.json`` (its format), or (None, why it is left out).

    Args:
        record: The checkpoint's facts.
        head_name: The registered head name the entry's name starts with.
        head_class: The head whose mmseg forms build it (a plug-in subclassing a built-in head passes its own).
        usual_crop: The dataset's usual training crop (``"512x1024"``), left out of the tag; default that of
            mmseg's zoo.
    """
    name = record["name"]
    dataset_facts = _dataset_facts().get(record["dataset"])
    if dataset_facts is None or dataset_facts["key"] is None:
        why = dataset_facts["left_out"] if dataset_facts else "segzoo does not know its classes"
        return None, f"dataset {record['dataset']!r}: {why}"
    form, options, why_not = _form(head_class, record)
    if form is None:
        return None, why_not
    backbone, why = _backbone(record)
    match = _NAME.match(name)
    if not backbone or why_not or not match:
        return None, why or why_not or "its name does not follow mmseg's naming scheme"
    url = record["weights"]
    for mistyped in _MISTYPED_HOSTS:
        url = BASE_URL + url[len(mistyped):] if url.startswith(mistyped) else url
    if not url.startswith(BASE_URL):
        return None, f"its file is not on mmseg's download server: {url}"
    dataset = dataset_facts["key"]
    # what tells two checkpoints of one architecture apart besides dataset, schedule and crop: "rsb" (a ResNet
    # strikes back backbone), "in1k-pre" (ImageNet-pretrained), "adamw", "amp"
    arch_parts = match["arch"].split("_")
    backbone_token = re.match(r"r\d+b?-d\d+(?:-mg\d+)?-?(?P<rest>.*)", arch_parts[1]) if len(arch_parts) > 1 else None
    extras = ([backbone_token["rest"].replace("-", "_")] if backbone_token and backbone_token["rest"] else []) \
        + arch_parts[2:] + [part for part in match["extra"].split("-") if part]
    usual_crop = usual_crop or _usual_crops()[record["dataset"]]
    crop = "" if match["crop"] == usual_crop else f"_{match['crop']}"
    tag = f"{dataset}_{match['schedule']}{crop}" + "".join(f"_{part}" for part in extras)
    # what the form's architecture adds to mmseg's head name goes into the zoo name: fcn-d6 -> fcn_d6_...
    variant_part = _architecture(record)[len(record["head"]):].replace("-", "_")
    architecture = f"{head_name}{variant_part}_{backbone.architecture}"
    file_path = url[len(BASE_URL):]
    inference = _inference(record)
    return PretrainedSpec(
        name=f"{architecture}.{tag}", upstream=SOURCE, variant=form.variant, backbone=backbone.timm_name,
        backbone_kwargs=backbone.kwargs, block_dilations=backbone.block_dilations,
        dataset=dataset, output_stride=backbone.output_stride, aux=bool(record["has_auxiliary_head"]),
        align_corners=bool(record["decode_head"]["align_corners"]),
        file=UpstreamFile("openmmlab", file_path, hash_in_name(file_path.rsplit("/", 1)[-1])),
        options=options, carry_palette=True, inference=inference,
        metrics={"mIoU": record["mIoU"], "mIoU_ms_flip": record.get("mIoU_ms_flip"),
                 "eval": f"single scale ({inference['mode']})"},
        metrics_source=f"mmsegmentation 1.2.2's metafile for {record['config']} ({name})"), ""


def _generate(heads: tuple[tuple[str, type], ...]
              ) -> tuple[dict[str, list[PretrainedSpec]], tuple[tuple[str, str], ...]]:
    """(entries per head name, (checkpoint, why left out) pairs), for the heads given as (name, class)."""
    specs: dict[str, list[tuple[PretrainedSpec, str]]] = {}
    skipped: list[tuple[str, str]] = []
    names = Counter(record["name"] for record in records())
    for record in records():
        name = record["name"]
        owner = next(((head, cls) for head, cls in heads if _form(cls, record)[0] is not None), None)
        if names[name] > 1 and not _named_after(record) and owner is not None:
            # mmseg's metafile lists two files under one name; the one named after another config is left out
            skipped.append((name, f"mmseg lists {record['weights'].rsplit('/', 1)[-1]} under this name too, a file "
                                  "named after another config; only the file named after this one is kept"))
            continue
        spec, why = mmseg_spec(record, *owner) if owner else (None, f"segzoo has no {record['head']} head in "
                                                                     "mmseg's form yet")
        if spec is None:
            skipped.append((name, why))
        else:
            specs.setdefault(owner[0], []).append((spec, _NAME.match(name)["gpus"]))
    return _with_short_names(_batch_told_apart(specs)), tuple(skipped)


@lru_cache(maxsize=4)
def _generated(heads: tuple[tuple[str, type], ...]):
    return _generate(heads)


def _catalogue_heads() -> tuple[tuple[str, type], ...]:
    """The registered heads that take mmseg's catalogue: ``FromCatalogue("mmseg")`` in the ``pretrained`` their own
    class declares (a plug-in subclassing FCNHead without its own ``pretrained`` must not take FCN's records)."""
    return tuple((info.name, info.plugin_class) for info in list_heads()
                 if FromCatalogue(SOURCE) in vars(info.plugin_class).get("pretrained", ()))


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


def catalogue_entries(head: str, head_class: type) -> tuple[PretrainedSpec, ...]:
    """The zoo entries of mmseg's catalogue that the registered head ``head`` builds."""
    return tuple(_generated(_catalogue_heads())[0].get(head, ()))


def left_out() -> tuple[tuple[str, str], ...]:
    """mmseg's checkpoints that have no entry, each with the reason."""
    return _generated(_catalogue_heads())[1]
