"""`segzoo info` and `segzoo list` (the command's main, in this process: the console script itself is run by the
registry, predict and export tests), and model_info against the test Hub."""
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import segzoo
from segzoo.tools.cli import main
from segzoo.tools.flops import count_flops


def run(*args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


def test_info_of_a_zoo_model():
    out = run("info", "ocnet_resnet101_voc")
    assert "backbone        resnet101s (JPU), aux head" in out
    assert "parameters      75.09 M" in out  # the reference's 75,094,762
    assert out.splitlines()[0] == "ocnet_resnet101_voc (zoo name ocnet_resnet101s_jpu.ref_voc)"
    assert "reported        mIoU 79.07, pixAcc 94.86 (Pascal VOC 2012 val;" in out
    assert ("weights         upstream file Google Drive file 15gs_gzgAT_hciPgwm12G_MRMi0VZg9Gb (not cached: "
            "downloaded and converted to safetensors on first use; segzoo mirror segzoo/ocnet_resnet101s_jpu.ref_voc "
            "not published yet)") in out
    assert "licence         unknown (!) unknown terms: The reference zoo states no licence" in out
    assert "classes         21: background, aeroplane" in out


def test_info_of_a_torchvision_entry_names_its_split_once():
    reported = next(line for line in run("info", "deeplabv3_resnet101.tv_coco_voc").splitlines()
                    if line.startswith("  reported"))
    assert reported.count("COCO val2017") == 1, reported
    assert reported.endswith("(COCO val2017, the 20 Pascal VOC categories; torchvision's weights enum "
                             "(COCO_WITH_VOC_LABELS_V1))")


def test_info_json_matches_an_independent_flop_count():
    info = json.loads(run("info", "fcn_resnet18", "--json"))
    gflops, params = count_flops("fcn_resnet18", (480, 480))
    assert info["gflops"] == round(gflops, 1) and info["params_m"] == round(params, 3)
    assert info["config"]["head"] == "fcn" and info["weights"]["source"].startswith("none")


def test_list_command():
    assert run("list", "*_ade").split() == ["deeplabv3_resnet101s_jpu.ref_ade"]
    table = [" ".join(row.split()) for row in run("list", "--pretrained").splitlines()]
    assert table[0] == "name also dataset mIoU source weights licence"
    assert "fcn_resnet101s_jpu.ref_voc fcn_resnet101_voc voc 76.89 reference gdrive unknown (!) unknown terms" in table
    assert "fcn_resnet50.tv_coco_voc coco_voc 60.5 torchvision torchvision bsd-3-clause" in table
    assert ("pspnet_resnet101c_d8.mmseg_cityscapes_80k mmseg_cityscapes 79.76 mmseg openmmlab apache-2.0"
            in table)
    assert "fcn_resnet18" not in run("list", "--pretrained").split()
    filtered = run("list", "--pretrained", "--head", "ccnet", "--source", "mmseg", "--dataset", "*voc*").splitlines()
    assert len(filtered) == 1 + 4 and all(" mmseg_voc_aug " in line for line in filtered[1:])
    assert "deeplabv3        segzoo" in run("list", "--heads")


def test_list_sets_zoo_entries_without_weights_apart():
    """Under a header that promises trained models, 5 entries had no weights anywhere."""
    listing, _, licence_note = run("list", "--pretrained").partition("\n\n(!) ")
    assert licence_note.startswith("non-commercial licence or unknown terms: read them")
    with_weights, _, without = listing.partition("\n\nNo weights anywhere (")
    assert "none published" not in with_weights
    rows = without.splitlines()[2:]
    assert rows and all("none published" in row for row in rows)
    assert "bisenet_resnet18.ref_voc" in without and "pretrained=False builds the architecture" in without


def test_list_that_matches_nothing_says_so(capsys):
    assert main(["list", "no_such_*"]) == 1
    assert capsys.readouterr() == ("", "no model name matches 'no_such_*'\n")
    assert main(["list", "--pretrained", "no_such_*"]) == 1
    assert capsys.readouterr().err == "no zoo entry matches 'no_such_*'\n"
    assert main(["list", "--pretrained", "--dataset", "mars"]) == 1
    assert capsys.readouterr().err == "no zoo entry matches these filters\n"


def test_list_heads_and_necks_filter_by_the_pattern(capsys):
    """`segzoo list --heads PATTERN` listed every head, ignoring PATTERN."""
    assert [line.split()[0] for line in run("list", "--heads", "psp*").splitlines()] == ["pspnet"]
    assert [line.split()[0] for line in run("list", "--necks", "j*").splitlines()] == ["jpu"]
    both = run("list", "--heads", "--necks", "*p*").splitlines()
    assert both[0] == "heads:" and "necks:" in both and both[both.index("necks:") + 1].startswith("feature2pyramid ")
    assert [line.split()[0] for line in both[both.index("necks:") + 1:]] == ["feature2pyramid", "jpu"]
    assert "fcn" not in [line.split()[0] for line in both]
    assert run("list", "--heads", "--necks", "fcn").splitlines()[0].startswith("fcn ")  # no empty "necks:" list
    capsys.readouterr()
    assert main(["list", "--heads", "no_such_*"]) == 1
    assert capsys.readouterr() == ("", "no head matches 'no_such_*'\n")
    assert main(["list", "--heads", "--necks", "no_such_*"]) == 1
    assert capsys.readouterr() == ("", "no head or neck matches 'no_such_*'\n")


def test_list_heads_and_necks_lists_both():
    out = run("list", "--heads", "--necks")
    heads, necks = out.split("necks:\n")
    assert heads.startswith("heads:\n") and "deeplabv3        segzoo" in heads
    assert necks.startswith("feature2pyramid  segzoo")
    assert [line.split()[0] for line in necks.splitlines()] == ["feature2pyramid", "jpu", "multilevel"]


def test_info_of_a_hub_model_says_whether_it_is_cached(hub_server, hub_env):
    model = segzoo.create_model("fcn_resnet18", num_classes=4)
    segzoo.push_to_hub(model, "alice/info", token="hf_test_alice", endpoint=hub_server.endpoint)
    before = segzoo.model_info("hf-hub:alice/info", token="hf_test_alice", endpoint=hub_server.endpoint)
    assert before["weights"]["cached"] is False and before["config"]["num_classes"] == 4
    segzoo.create_model("hf-hub:alice/info", token="hf_test_alice", endpoint=hub_server.endpoint)
    after = segzoo.model_info("hf-hub:alice/info", token="hf_test_alice", endpoint=hub_server.endpoint)
    assert after["weights"]["cached"] is True and after["weights"]["path"].endswith("model.safetensors")


def test_list_necks_command():
    version = segzoo.__version__
    assert run("list", "--necks").splitlines() == [
        f"feature2pyramid  segzoo {version}  segzoo.necks.feature2pyramid:Feature2Pyramid",
        f"jpu              segzoo {version}  segzoo.necks.jpu:JPU",
        f"multilevel       segzoo {version}  segzoo.necks.multilevel:MultiLevelNeck"]


def test_torch_hub_loads_any_model_name_through_hubconf():
    """hubconf.py: torch.hub.load of the repository (source="local": the files a GitHub download would give)."""
    import torch

    repo = Path(__file__).resolve().parents[2]
    model = torch.hub.load(str(repo), "fcn_resnet18", source="local", trust_repo=True, num_classes=3)
    assert isinstance(model, segzoo.SegmentationModel) and model.num_classes == 3 and not model.training
    # torch.hub.list / help (GitHub only) read the module as below
    spec = importlib.util.spec_from_file_location("hubconf", repo / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    names = [name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")]
    assert "fcn_resnet18" in names and "pspnet_resnet101s_jpu.ref_voc" in names
    assert hubconf.psp_resnet101_voc.__doc__.startswith("segzoo.create_model('psp_resnet101_voc'")


def test_info_of_an_mmseg_entry_says_how_it_was_evaluated():
    out = run("info", "fcn_resnet18c_d8.mmseg_cityscapes_80k_769x769")
    assert "evaluated as    resized to fit 2049x1025 (long x short side), 769x769 windows every 513x513" in out
    assert "backbone        resnet18 {'stem_type': 'deep', 'stem_width': 32} (output stride 8)" in out
    assert "openmmlab.com/mmsegmentation/v0.5/fcn/fcn_r18-d8_769x769_80k_cityscapes/" in out


def test_info_states_the_task_and_the_bands(tmp_path):
    model = segzoo.create_model("fcn_resnet18", num_classes=2, mode="multilabel", threshold=0.3, in_chans=4)
    segzoo.save_pretrained(model, tmp_path / "m")
    out = run("info", f"local-dir:{tmp_path / 'm'}")
    assert "task            multi-label: a sigmoid per label, threshold 0.3" in out
    assert "preprocessing   4 bands, mean [0.485, 0.456, 0.406, 0.485]" in out
    plain = run("info", "fcn_resnet18")
    assert "task" not in plain and "preprocessing   mean [0.485, 0.456, 0.406]" in plain
