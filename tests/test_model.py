"""FCN end to end, and the SegmentationModel contract (shapes, modes, bad input)."""
import pytest
import torch

from segzoo import ConfigError, ModelConfig, SegmentationModel, create_model


@pytest.mark.parametrize("size", [(64, 64), (97, 131), (33, 47)])
@pytest.mark.parametrize("options", [dict(), dict(output_stride=16), dict(neck="jpu")])
def test_eval_output_is_one_tensor_at_input_size(size, options):
    model = create_model("fcn_resnet18", num_classes=5, **options)
    out = model(torch.randn(1, 3, *size))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 5, *size)


def test_train_mode_returns_main_and_aux(images):
    model = create_model("fcn_resnet18", aux=True, num_classes=3).train()
    main, aux = model(images)
    assert main.shape == aux.shape == (2, 3, 64, 80)
    assert not torch.equal(main, aux)
    (main.mean() + 0.4 * aux.mean()).backward()
    assert model.aux_head.classifier.weight.grad is not None
    assert model.backbone.conv1.weight.grad is not None


def test_train_mode_without_aux_is_a_one_tuple(images):
    model = create_model("fcn_resnet18", num_classes=3).train()
    out = model(images)
    assert isinstance(out, tuple) and len(out) == 1 and model.aux_head is None


def test_aux_does_not_change_eval_output(images):
    torch.manual_seed(0)
    with_aux = create_model("fcn_resnet18", aux=True)
    without = create_model("fcn_resnet18", aux=False)
    without.load_state_dict({k: v for k, v in with_aux.state_dict().items() if not k.startswith("aux_head.")})
    assert torch.equal(with_aux(images), without(images))


def test_eval_is_deterministic(images):
    model = create_model("fcn_resnet18")
    with torch.no_grad():
        assert torch.equal(model(images), model(images))


def test_upsampling_follows_align_corners(images):
    model = create_model("fcn_resnet18", num_classes=2)
    logits = model.head(dict(zip(("c1", "c2", "c3", "c4"), model.backbone(images))))
    expected = torch.nn.functional.interpolate(logits, size=(64, 80), mode="bilinear", align_corners=True)
    assert torch.allclose(model(images), expected, atol=1e-6)


def test_reference_fcn_layout():
    """The reference FCN: ResNet-101-v1s at output stride 32 + JPU + FCN head on 2048 ch + aux on raw c3."""
    model = create_model("fcn_resnet18", neck="jpu", aux=True, num_classes=21)
    assert model.config.output_stride == 32
    assert model.head.fcn.block.conv.in_channels == 2048  # 4 JPU branches x 512
    assert model.aux_head.block.conv.in_channels == 256  # resnet18's c3


@pytest.mark.slow
def test_reference_fcn_r101_counts_the_reference_parameters():
    """Counts taken from the reference code: FCN + JPU on ResNet-101-v1s, 21 classes."""
    for aux, expected in ((True, 74_173_674), (False, 71_808_469)):
        model = create_model("fcn_resnet101s", neck="jpu", aux=aux, num_classes=21)
        assert sum(p.numel() for p in model.parameters()) == expected
    out = model(torch.randn(1, 3, 97, 131))
    assert out.shape == (1, 21, 97, 131)


def test_wrong_input_shape_is_named():
    model = create_model("fcn_resnet18")
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 3, H, W\).*\(1, 4, 32, 32\)"):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match=r"got \(3, 32, 32\)"):
        model(torch.randn(3, 32, 32))


def test_unknown_head_argument_is_named():
    with pytest.raises(ConfigError, match="head 'fcn' does not accept argument.*bins.*accepts: channels, .*dropout"):
        create_model("fcn_resnet18", bins=(1, 2))


def test_head_kwargs_reach_the_head():
    model = create_model("fcn_resnet18", dropout=0.3)
    assert model.head.fcn.dropout.p == 0.3 and model.config.head_kwargs == {"dropout": 0.3}


def test_num_classes_below_one():
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 1, got 0"):
        create_model("fcn_resnet18", num_classes=0)


def test_models_are_built_from_configs():
    config = ModelConfig(head="fcn", backbone="resnet18", num_classes=7, output_stride=16)
    model = SegmentationModel(config)
    assert model.config is config and model.num_classes == 7


def test_a_graph_traced_where_the_logits_have_the_input_size_still_resizes_them():
    """At 1x1 the logits come out at the input's size; a graph traced there (the TorchScript tracer, as torch.export
    and ONNX exporters record) must still resize them at other sizes, not return the traced shape."""
    model = create_model("fcn_test_resnet.r160_in1k", num_classes=3).eval()
    with torch.no_grad(), pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(model, torch.randn(1, 3, 1, 1), check_trace=False)
        images = torch.randn(1, 3, 33, 33)
        assert traced(images).shape == (1, 3, 33, 33)
        torch.testing.assert_close(traced(images), model(images))
