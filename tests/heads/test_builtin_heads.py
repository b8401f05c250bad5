"""segzoo.testing's shared battery on every built-in head (one class per head), plus head-specific checks."""
import pytest
import torch

from segzoo import ConfigError, create_model
from segzoo.testing import HeadBattery


class BuiltinHead(HeadBattery):
    # tests/inference/test_export.py exports each of these heads in these forms: DANet in the default tier, the others
    # in the slow tier (CI runs it after the default tier)
    test_onnx_export_runs_at_other_sizes = None


class TestFCN(BuiltinHead):
    head = "fcn"


class TestPSPNet(BuiltinHead):
    head = "pspnet"


class TestDeepLabV3(BuiltinHead):
    head = "deeplabv3"


class TestDANet(BuiltinHead):
    head = "danet"
    extra_train_outputs = 2


@pytest.mark.slow  # an option variant of DANet: the battery runs on DANet's default form in the default tier
class TestDANetReference(BuiltinHead):
    head = "danet"
    kwargs = {"softmax_over": "queries", "deep_supervision": False}


class TestOCNetBase(BuiltinHead):
    head = "ocnet"


@pytest.mark.slow  # an option variant of OCNet: the battery runs on OCNet's default form in the default tier
class TestOCNetASP(BuiltinHead):
    head = "ocnet"
    kwargs = {"variant": "asp"}


class TestCCNet(BuiltinHead):
    head = "ccnet"


class TestBiSeNet(BuiltinHead):
    head = "bisenet"
    structures = ({"output_stride": 32},)
    aux_outputs = 2


def assert_option_changes_outputs(model, other, gamma_key):
    """Same weights (attention switched on: gamma = 1), different head option -> different outputs."""
    state = model.state_dict()
    state[gamma_key] = torch.ones(1)
    model.load_state_dict(state)
    other.load_state_dict(state)
    images = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(model(images), other(images))


def test_psp_bins_larger_than_the_feature_map_work():
    model = create_model("pspnet_resnet18", num_classes=3, bins=(1, 2, 3, 6, 12))
    assert model(torch.randn(1, 3, 33, 40)).shape == (1, 3, 33, 40)  # c4 is 5x5


def test_psp_bins_change_outputs_not_parameters():
    a = create_model("pspnet_resnet18", bins=(1, 2, 3, 6))
    b = create_model("pspnet_resnet18", bins=(1, 2, 3, 4))
    b.load_state_dict(a.state_dict())
    images = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(a(images), b(images))


def test_ccnet_recurrence():
    with pytest.raises(ConfigError, match="recurrence must be an integer >= 1, got 0"):
        create_model("ccnet_resnet18", recurrence=0)
    torch.manual_seed(0)
    assert_option_changes_outputs(create_model("ccnet_resnet18", recurrence=1),
                                  create_model("ccnet_resnet18", recurrence=2), "head.attention.gamma")


def test_ocnet_rejects_unknown_variant():
    with pytest.raises(ConfigError, match="OCNet variant must be 'base' or 'asp', got 'pyramid'"):
        create_model("ocnet_resnet18", variant="pyramid")


def test_danet_softmax_axis_changes_outputs():
    assert_option_changes_outputs(create_model("danet_resnet18"),
                                  create_model("danet_resnet18", softmax_over="queries"),
                                  "head.position_attention.gamma")


def test_bisenet_sees_the_image():
    model = create_model("bisenet_resnet18", output_stride=32)
    assert model.head.needs_image and model.head.spatial_path.conv1.conv.in_channels == 3


REFERENCE_COUNTS = [  # parameters of the reference models (ResNet-101-v1s, 21 classes), counted on the reference code
    ("fcn_resnet101s", dict(neck="jpu"), 74_173_674, 71_808_469),
    ("pspnet_resnet101s", dict(output_stride=8, bins=(1, 2, 3, 4)), 68_073_706, 65_708_501),
    ("pspnet_resnet101s", dict(neck="jpu", bins=(1, 2, 3, 4)), 87_809_258, 85_444_053),
    ("deeplabv3_resnet101s", dict(neck="jpu"), 80_855_530, 78_490_325),
    ("danet_resnet101s", dict(neck="jpu", deep_supervision=False), 88_660_844, 86_295_639),
    ("ocnet_resnet101s", dict(neck="jpu"), 75_094_762, 72_729_557),
    ("ocnet_resnet101s", dict(neck="jpu", variant="asp", asp_reduce_channels=0, asp_branch_channels=512),
     105_770_986, 103_405_781),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs, with_aux, without_aux", REFERENCE_COUNTS)
def test_reference_parameter_counts(name, kwargs, with_aux, without_aux):
    for aux, expected in ((True, with_aux), (False, without_aux)):
        with torch.device("meta"):
            model = create_model(name, aux=aux, num_classes=21, **kwargs)
        assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("name, kwargs", [("bisenet_resnet18", {"neck": "jpu"}), ("bisenet_resnet18_jpu", {})])
def test_bisenet_takes_no_neck(name, kwargs):
    """Its context path is the backbone's own c3 and c4: a neck would silently replace it (issue: it was accepted)."""
    with pytest.raises(ConfigError, match="takes no neck; got neck='jpu'"):
        create_model(name, **kwargs)
    assert create_model("bisenet_resnet18").config.output_stride == 32
