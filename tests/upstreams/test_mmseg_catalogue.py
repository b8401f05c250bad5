"""mmsegmentation's zoo entries: generated from its facts, each one buildable, its key rules covering its layout."""
from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources

import pytest
import torch

import segzoo
from segzoo.upstreams.mmseg import left_out, records
from segzoo.weights.convert import convert_upstream
from segzoo.zoo import get_pretrained, list_pretrained
from segzoo.zoo.datasets import DATASETS
from support.mmseg_reference import key_layouts

HEADS = ("fcn", "pspnet", "deeplabv3", "danet", "ccnet", "bisenet", "deeplabv3plus", "upernet")


def mmseg_names(head: str = "*") -> list[str]:
    """The entries of mmseg's catalogue (ResNets); its transformer-era entries: test_mmseg_transformers_parity.py."""
    return [name for name in list_pretrained(head=head, source="mmseg")
            if get_pretrained(name).config.backbone.startswith("resnet")]


def test_every_checkpoint_of_the_built_heads_is_an_entry_or_left_out_with_its_reason():
    counts = Counter(get_pretrained(name).config.head for name in mmseg_names())
    assert {head: counts[head] for head in HEADS} == {"fcn": 41, "pspnet": 53, "deeplabv3": 41, "danet": 16,
                                                      "ccnet": 16, "bisenet": 10, "deeplabv3plus": 40, "upernet": 16}
    mmseg_heads = ("fcn", "pspnet", "deeplabv3", "danet", "ccnet", "bisenetv1", "deeplabv3plus", "upernet")
    assert len(records()) == 237 and all(record["head"] in mmseg_heads for record in records())
    skipped = [(name, why) for name, why in left_out() if name.split("_")[0].split("-")[0] in mmseg_heads]
    also = "under this name too, a file named after another config; only the file named after this one is kept"
    assert skipped == [
        ("pspnet_r50b-d32_4xb2-80k_cityscapes-512x1024",
         f"mmseg lists pspnet_r50-d32_512x1024_80k_cityscapes_20220316_224840-9092b254.pth {also}"),
        ("bisenetv1_r50-d32-in1k-pre_4xb4-160k_coco-stuff164k-512x512",
         f"mmseg lists bisenetv1_r101-d32_lr5e-3_4x4_512x512_160k_coco-stuff164k_20211102_164147-c6b32c3b.pth {also}"),
        ("deeplabv3plus_r101-d8_4xb4-160k_ade20k-512x512",
         f"mmseg lists deeplabv3plus_r101-d8_512x512_80k_ade20k_20200615_014139-d5730af7.pth {also}"),
        ("deeplabv3plus_r50-d8_4xb2-300k_mapillay_v1_65-1280x1280",
         "dataset 'Mapillary Vistas v1.2': its class list does not match the checkpoint")]
    files = Counter(get_pretrained(name).file.path for name in mmseg_names())
    assert len(files) == 233 and max(files.values()) == 1  # one entry per checkpoint file


def test_the_facts_reach_the_entries():
    """The reported numbers, the files and their hashes, the recipe (mmseg's classes, official palettes, align_corners,
    whole or sliding-window evaluation)."""
    assert get_pretrained("pspnet_resnet101c_d8.mmseg_cityscapes_80k").metrics["mIoU"] == 79.76
    assert get_pretrained("danet_resnet101c_d8.mmseg_cityscapes_80k").metrics["mIoU"] == 80.41
    assert get_pretrained("deeplabv3_resnet101c_d8.mmseg_cityscapes_80k").metrics["mIoU"] == 80.20
    facts = {record["weights"].rsplit("/", 1)[-1]: record for record in records()}
    datasets = json.loads((resources.files("segzoo.upstreams.mmseg") / "datasets.json").read_text())
    for name in mmseg_names():
        entry = get_pretrained(name)
        record = facts[entry.file.path.rsplit("/", 1)[-1]]
        assert entry.source.endswith(f"({record['name']})")
        assert entry.metrics["mIoU"] == record["mIoU"] and entry.metrics["mIoU_ms_flip"] == record["mIoU_ms_flip"]
        assert entry.file.host == "openmmlab" and record["weights"].endswith("/" + entry.file.path)
        assert re.fullmatch(r"[0-9a-f]{8}", entry.file.sha256) and entry.file.path.endswith(f"-{entry.file.sha256}.pth")
        classes = datasets[record["dataset"]]
        assert list(entry.config.class_names) == classes["classes"] == list(DATASETS[entry.dataset].class_names)
        assert [list(colour) for colour in entry.config.palette] == classes["palette"]
        assert entry.config.num_classes == record["decode_head"]["num_classes"]
        assert entry.config.align_corners == record["decode_head"]["align_corners"]
        assert entry.config.aux == record["has_auxiliary_head"]
        assert entry.config.inference["mode"] == record["test_cfg"]["mode"] and entry.license == "apache-2.0"
    # ADE20K's palette is mmseg's (the official one), not segzoo's own
    ade = get_pretrained("pspnet_resnet50c_d8.mmseg_ade20k")
    assert ade.config.palette[:2] == ((120, 120, 120), (180, 120, 120))
    assert get_pretrained("fcn_resnet50c_d8.mmseg_cityscapes_40k_769x769").config.inference == {
        "resize": (2049, 1025), "mode": "slide", "crop": (769, 769), "stride": (513, 513)}
    assert get_pretrained("pspnet_resnet50c_d8.mmseg_ade20k").config.inference == {"resize": (2048, 512),
                                                                                   "mode": "whole"}


def test_short_names_point_at_the_best_checkpoint_of_each_architecture_and_dataset():
    best: dict[str, tuple[float, str]] = {}
    for name in mmseg_names():
        entry = get_pretrained(name)
        short = f"{name.split('.')[0]}.{entry.dataset}"
        best[short] = max(best.get(short, (-1.0, "")), (entry.metrics["mIoU"], name))
    for short, (_, name) in best.items():
        assert get_pretrained(short).name == name


def test_list_filters_by_head_backbone_dataset_and_source():
    names = segzoo.list_models(pretrained=True, head="danet", backbone="resnet50c", dataset="mmseg_cityscapes")
    assert names == ["danet_resnet50c_d8.mmseg_cityscapes_40k", "danet_resnet50c_d8.mmseg_cityscapes_40k_769x769",
                     "danet_resnet50c_d8.mmseg_cityscapes_80k", "danet_resnet50c_d8.mmseg_cityscapes_80k_769x769"]
    assert set(list_pretrained(source="torchvision")) == {"fcn_resnet50.tv_coco_voc", "fcn_resnet101.tv_coco_voc",
                                                          "deeplabv3_resnet50.tv_coco_voc",
                                                          "deeplabv3_resnet101.tv_coco_voc"}
    assert list_pretrained("*_mg124.*", dataset="*cityscapes") == [
        "deeplabv3_resnet101c_d16_mg124.mmseg_cityscapes_40k", "deeplabv3_resnet101c_d16_mg124.mmseg_cityscapes_80k",
        "deeplabv3plus_resnet101c_d16_mg124.mmseg_cityscapes_80k"]
    with pytest.raises(TypeError, match="pretrained=True"):
        segzoo.list_models(head="fcn")


# Reference key layouts (mmseg 1.2.2's own state dicts) per head form and block type: every entry's layout is one
# of them with its depth, stem, classes and aux head changed, which the converter must place key by key.
REFERENCES = {("fcn", "basic"): "fcn_r18-d8_4xb2-80k_cityscapes-512x1024",
              ("fcn", "bottleneck"): "fcn_r50-d8_4xb2-40k_cityscapes-512x1024",
              ("fcn_d6", "bottleneck"): "fcn-d6_r50-d16_4xb2-40k_cityscapes-512x1024",
              ("pspnet", "basic"): "pspnet_r18b-d8_4xb2-80k_cityscapes-512x1024",
              ("pspnet", "bottleneck"): "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024",
              ("deeplabv3", "bottleneck"): "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024",
              ("danet", "bottleneck"): "danet_r50-d8_4xb2-40k_cityscapes-512x1024",
              ("ccnet", "bottleneck"): "ccnet_r50-d8_4xb2-40k_cityscapes-512x1024",
              ("bisenetv1", "basic"): "bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024",
              ("deeplabv3plus", "bottleneck"): "deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024",
              ("upernet", "bottleneck"): "upernet_r50_4xb2-40k_cityscapes-512x1024"}
R50_STEM_V1C = "fcn_r50-d8_4xb2-40k_cityscapes-512x1024"
R50_STEM_V1B = "pspnet_r50b-d32_4xb2-80k_cityscapes-512x1024"
LAYER3_BLOCKS = {"resnet18": 2, "resnet50": 6, "resnet50c": 6, "resnet101": 23, "resnet101c": 23}


def entry_layout(entry) -> dict[str, tuple]:
    """The mmseg key layout of an entry's checkpoint: its form's reference with the entry's stem, depth, classes."""
    config = entry.config
    basic = config.backbone == "resnet18"
    reference = key_layouts()[REFERENCES[entry.variant, "basic" if basic else "bottleneck"]]
    layout = {key: tuple(shape) for key, (shape, _) in reference.items()}
    v1c = bool(config.backbone_kwargs) or config.backbone.endswith("c")
    stem_source = key_layouts()[R50_STEM_V1C if v1c else R50_STEM_V1B]
    stem = ("backbone.stem.", "backbone.conv1.", "backbone.bn1.")
    if entry.variant != "bisenetv1":  # BiSeNetV1's ResNet is always v1b, inside its context path
        layout = {k: v for k, v in layout.items() if not k.startswith(stem)}
        layout.update({k: tuple(s) for k, (s, _) in stem_source.items() if k.startswith(stem)})
    # layer3 depth: blocks 1.. repeat block 1's keys
    blocks = LAYER3_BLOCKS[config.backbone]
    block1 = {k[len("backbone.layer3.1."):]: v for k, v in layout.items() if k.startswith("backbone.layer3.1.")}
    layout = {k: v for k, v in layout.items() if not re.match(r"backbone\.layer3\.([1-9]|\d\d)\.", k)}
    layout.update({f"backbone.layer3.{i}.{rest}": shape for i in range(1, blocks) for rest, shape in block1.items()})
    # classes: the rows of every classifier
    layout = {k: ((config.num_classes, *v[1:]) if re.search(r"conv_seg\.(weight|bias)$", k) else v)
              for k, v in layout.items()}
    if not config.aux:
        layout = {k: v for k, v in layout.items() if not k.startswith("auxiliary_head.")}
    return layout


@pytest.mark.slow  # 15 s; the default tier converts 14 of mmseg's configs exactly (test_mmseg_parity.py)
def test_every_entry_builds_and_its_rules_place_every_key_of_its_layout():
    """One entry per structure (classes and align_corners aside: neither changes a key), on the meta device: built,
    run on a small input, and converted from its layout with every key placed and every shape checked. The
    ResNet-18 DeepLabV3(+) entries and the ResNet-50 / 101 BiSeNetV1 ones have no reference layout of their widths
    (their backbone is covered by the others', their head's rules by the ResNet-50 DeepLabV3 and ResNet-18
    BiSeNetV1 ones)."""
    structures: dict[str, str] = {}
    for name in mmseg_names():
        config = get_pretrained(name).config.to_dict()
        ignored = ("class_names", "palette", "input_size", "num_classes", "align_corners", "inference")
        structures.setdefault(json.dumps({k: v for k, v in config.items() if k not in ignored}, sort_keys=True), name)
    checked, without_reference = 0, []
    for name in structures.values():
        entry = get_pretrained(name)
        with torch.device("meta"):
            model = segzoo.create_model(name).eval()
            assert model(torch.empty(1, 3, 65, 97)).shape == (1, entry.config.num_classes, 65, 97)
            if (entry.variant, "basic" if entry.config.backbone == "resnet18" else "bottleneck") not in REFERENCES:
                without_reference.append(name)
                continue
            source = {key: torch.empty(shape) for key, shape in entry_layout(entry).items()}
            _, converted, report = convert_upstream(source, "mmseg", entry=entry)
        assert report.placed == len(source) == len(model.state_dict()), name
        checked += 1
    assert checked >= 30 and all(name.startswith(("deeplabv3_resnet18", "deeplabv3plus_resnet18", "bisenet_resnet50",
                                                  "bisenet_resnet101")) for name in without_reference)


def test_segzoo_convert_from_mmseg_with_and_without_the_zoo_name(tmp_path, capsys):
    """``segzoo convert --from mmseg FILE OUT --model NAME``: the entry's recipe (classes, palette, dilations); without
    --model, what the keys tell (here the same network). Both reproduce mmseg's outputs from local-dir:OUT."""
    from segzoo.tools.cli import main
    from support.mmseg_reference import max_difference, reference_outputs, seeded_state_dict

    reference = "fcn_r18-d8_4xb2-80k_cityscapes-512x1024"
    torch.save({"meta": {"CLASSES": ["road"], "iter": 80000}, "state_dict": seeded_state_dict(reference)},
               tmp_path / "fcn_r18.pth")
    for out, extra in (("named", ["--model", "fcn_resnet18c_d8.mmseg_cityscapes_80k"]), ("inferred", [])):
        assert main(["convert", "--from", "mmseg", str(tmp_path / "fcn_r18.pth"), str(tmp_path / out), *extra]) == 0
        assert "160 keys placed" in capsys.readouterr().out
        model = segzoo.create_model(f"local-dir:{tmp_path / out}").eval()
        assert model.config.block_dilations == {"layer3": (1, 2), "layer4": (2, 4)}
        with torch.no_grad():
            difference, allowed = max_difference(model(torch.from_numpy(reference_outputs()["input"])),
                                                 reference_outputs()[f"{reference}/logits"])
        assert difference <= allowed, (out, difference)
    assert segzoo.create_model(f"local-dir:{tmp_path / 'named'}").config.class_names[0] == "road"
    # the wrong zoo name: its keys do not fit, and the error says which
    assert main(["convert", "--from", "mmseg", str(tmp_path / "fcn_r18.pth"), str(tmp_path / "bad"),
                 "--model", "pspnet_resnet18c_d8.mmseg_cityscapes_80k"]) == 1
    assert "keys that cannot be placed" in capsys.readouterr().err and not (tmp_path / "bad").exists()
