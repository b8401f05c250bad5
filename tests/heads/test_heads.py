"""The shared battery every head runs (one class line per head), plus head-specific checks."""
import pytest
import torch

from support.models import randomize_batch_norm
from segzoo import ConfigError, create_model, optimize_for_inference, save_pretrained
from segzoo.inference.optimize import FusedConv2d

SIZES = [(64, 64), (97, 131), (33, 47)]
DILATED_AND_JPU = ({"output_stride": 8}, {"output_stride": 16}, {"neck": "jpu"})


class HeadBattery:
    """Subclass with ``head`` (and optionally ``kwargs``, ``structures``, ``extra_train_outputs``)."""

    head: str
    kwargs: dict = {}
    structures: tuple = DILATED_AND_JPU
    extra_train_outputs = 0  # deep-supervision outputs the head adds in training (before the aux head)
    aux_outputs = 1

    def build(self, structure=None, **kwargs):
        torch.manual_seed(0)
        structure = structure or self.structures[0]
        return create_model(f"{self.head}_resnet18", num_classes=3, **structure, **{**self.kwargs, **kwargs})

    @pytest.mark.parametrize("size", SIZES)
    def test_eval_forward_at_any_size(self, size):
        for structure in self.structures:
            out = self.build(structure)(torch.randn(1, 3, *size))
            assert isinstance(out, torch.Tensor) and out.shape == (1, 3, *size), structure
            assert torch.isfinite(out).all()

    @pytest.mark.parametrize("aux", [False, True])
    def test_train_outputs_and_backward_reach_every_parameter(self, aux):
        model = self.build(aux=aux).train()
        outputs = model(torch.randn(2, 3, 64, 72))
        expected = 1 + self.extra_train_outputs + (self.aux_outputs if aux else 0)
        assert isinstance(outputs, tuple) and len(outputs) == expected
        assert all(o.shape == (2, 3, 64, 72) for o in outputs)
        sum(o.square().mean() for o in outputs).backward()
        unused = [name for name, p in model.named_parameters() if p.grad is None]
        assert not unused  # DDP needs no find_unused_parameters
        assert (model.aux_head is not None) == (aux and not model.head.handles_aux)

    def test_save_load_round_trip(self, tmp_path):
        for structure in self.structures:
            model = self.build(structure, aux=True)
            images = torch.randn(1, 3, 50, 66)
            save_pretrained(model, tmp_path / str(len(structure)))
            loaded = create_model(f"local-dir:{tmp_path / str(len(structure))}")
            assert torch.equal(loaded(images), model(images))

    def test_optimize_for_inference_keeps_the_outputs(self):
        for structure in self.structures:
            model = randomize_batch_norm(self.build(structure, aux=True)).eval()
            fast = optimize_for_inference(model)
            assert any(isinstance(m, FusedConv2d) and m.folded_batch_norm for m in fast.head.modules()), structure
            for size in ((64, 64), (45, 61)):
                images = torch.randn(2, 3, *size)
                with torch.inference_mode():
                    expected = model(images)
                    torch.testing.assert_close(fast(images), expected, rtol=1e-4,
                                               atol=1e-5 * expected.abs().max().item())

    def test_eval_is_deterministic(self):
        model = self.build()
        images = torch.randn(1, 3, 45, 61)
        with torch.no_grad():
            assert torch.equal(model(images), model(images))

    def test_classifiers_are_found_for_num_classes_changes(self):
        model = self.build(aux=True)
        keys = model.classifier_keys()
        assert keys and all(model.state_dict()[k].shape[0] == 3 for k in keys)


class TestFCN(HeadBattery):
    head = "fcn"


class TestPSPNet(HeadBattery):
    head = "pspnet"


class TestDeepLabV3(HeadBattery):
    head = "deeplabv3"


class TestDANet(HeadBattery):
    head = "danet"
    extra_train_outputs = 2


class TestDANetReference(HeadBattery):
    head = "danet"
    kwargs = {"softmax_over": "queries", "deep_supervision": False}


class TestOCNetBase(HeadBattery):
    head = "ocnet"


class TestOCNetASP(HeadBattery):
    head = "ocnet"
    kwargs = {"variant": "asp"}


class TestCCNet(HeadBattery):
    head = "ccnet"


class TestBiSeNet(HeadBattery):
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
    assert_option_changes_outputs(create_model("danet_resnet18"), create_model("danet_resnet18", softmax_over="queries"),
                                  "head.position_attention.gamma")


def test_bisenet_sees_the_image():
    model = create_model("bisenet_resnet18", output_stride=32)
    assert model.head.needs_image and model.head.spatial_path.conv1.conv.in_channels == 3


REFERENCE_COUNTS = [  # parameters of the reference models (ResNet-101-v1s, 21 classes), from SPEC.md
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
