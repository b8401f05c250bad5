"""Licences in the zoo: each entry states one, list_pretrained / segzoo list filter on it, and a non-commercial
licence or unknown terms is flagged in the listing, in segzoo info and in the model card."""
from __future__ import annotations

import contextlib
import io

import pytest

from segzoo import get_pretrained, list_pretrained
from segzoo.tools.cli import main
from segzoo.weights.model_card import build_model_card
from segzoo.zoo import OPEN_LICENSES, license_flag


def run(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


@pytest.mark.parametrize("license, flag", [
    ("apache-2.0", None), ("bsd-3-clause", None), ("MIT", None), ("cc-by-nc-4.0", "non-commercial"),
    ("cc-by-nc-sa-4.0", "non-commercial"), ("nvidia-noncommercial", "non-commercial"), ("unknown", "unknown terms"),
    ("other", "unknown terms"), ("gpl-3.0", "unknown terms"),
])
def test_license_flag(license, flag):
    assert license_flag(license) == flag


def test_other_licences_are_read_from_their_terms():
    assert license_flag("other", "NVIDIA Source Code License: non-commercial use only") == "non-commercial"
    assert license_flag("other", "The licence its Hub repo states") == "unknown terms"
    assert license_flag("apache-2.0", "data: non-commercial research only") is None  # the licence id decides


def test_segformer_entries_are_flagged_non_commercial_everywhere():
    name = "segformer_mit_b0.mmseg_ade20k_160k"
    listing = run("list", "--pretrained", "segformer_mit_b0.*")
    assert all(row.rstrip().endswith("other (!) non-commercial") for row in listing.split("\n\n")[0].splitlines()[2:])
    assert "licence         other (!) non-commercial: NVIDIA Source Code License for SegFormer" in run("info", name)
    entry = get_pretrained(name)
    card = build_model_card(entry.config, "segzoo/x", entry=entry)
    assert "## Licence\n\n**Non-commercial: the weights are under `other`.** NVIDIA Source Code License" in card


def test_every_entry_states_a_licence_and_the_filter_selects_by_it():
    names = list_pretrained()
    licences = {get_pretrained(name).license for name in names}
    assert {"apache-2.0", "bsd-3-clause", "unknown"} <= licences and "" not in licences
    apache = list_pretrained(license="apache-2.0")
    assert apache and all(get_pretrained(name).license == "apache-2.0" for name in apache)
    mmseg = {name for name in names if get_pretrained(name).upstream == "mmseg"}
    segformer = {name for name in names if get_pretrained(name).config.head == "segformer"}
    assert mmseg - segformer <= set(apache) and all(
        get_pretrained(name).upstream in ("transformers", "dinov2") for name in set(apache) - mmseg)
    # Mask2Former's checkpoints are CC BY-NC 4.0 (its model zoo's terms): flagged, and not open
    mask2former = {name for name in names if get_pretrained(name).config.head == "mask2former"}
    assert mask2former and all(license_flag(get_pretrained(name).license, get_pretrained(name).terms)
                               == "non-commercial" for name in mask2former)
    # SegFormer's weights, mmseg's too, are under NVIDIA's non-commercial licence: flagged, and not open
    assert len(segformer) == 25 and not segformer & set(apache)
    assert all(license_flag(get_pretrained(name).license, get_pretrained(name).terms) == "non-commercial"
               for name in segformer)
    assert list_pretrained(license="bsd-*") == [n for n in names if get_pretrained(n).license == "bsd-3-clause"]
    open_only = list_pretrained(license=sorted(OPEN_LICENSES))  # leaves out non-commercial and unknown terms
    assert set(open_only) == {name for name in names if license_flag(get_pretrained(name).license) is None}
    assert not segformer & set(open_only)
    assert not any(get_pretrained(name).upstream == "reference" for name in open_only)
    assert list_pretrained("*_voc", license="unknown", head="fcn") == [
        n for n in list_pretrained("*_voc", head="fcn") if get_pretrained(n).license == "unknown"]


@pytest.mark.parametrize("bad", [3, [], ["apache-2.0", 3]])
def test_license_filter_is_a_pattern_or_a_list_of_them(bad):
    with pytest.raises(TypeError, match=r"list_pretrained's license is a pattern \(a string\) or a non-empty list"):
        list_pretrained(license=bad)


def test_segzoo_list_filters_by_licence_and_flags_unknown_terms():
    bsd = run("list", "--pretrained", "--license", "bsd-3-clause")
    rows = bsd.splitlines()[2:]
    assert rows and all(row.rstrip().endswith("bsd-3-clause") for row in rows) and "(!)" not in bsd
    reference = run("list", "--pretrained", "--source", "reference")
    table = reference.split("\n\n")[0].splitlines()[2:]
    assert table and all(row.rstrip().endswith("unknown (!) unknown terms") for row in table)
    assert "(!) non-commercial licence or unknown terms: read them (segzoo info NAME)" in reference


def test_segzoo_info_and_the_model_card_flag_unknown_terms_and_leave_open_licences_alone():
    reference = next(n for n in list_pretrained(source="reference") if get_pretrained(n).file is not None)
    apache = list_pretrained(license="apache-2.0")[0]
    assert "licence         unknown (!) unknown terms: The reference zoo states no licence" in run("info", reference)
    assert "(!)" not in run("info", apache) and "licence         apache-2.0: " in run("info", apache)
    entry = get_pretrained(reference)
    card = build_model_card(entry.config, "segzoo/x", entry=entry)
    assert "## Licence\n\n**Unknown terms: the weights are under `unknown`.** The reference zoo states" in card
    open_entry = get_pretrained(apache)
    assert "## Licence" not in build_model_card(open_entry.config, "segzoo/y", entry=open_entry)
