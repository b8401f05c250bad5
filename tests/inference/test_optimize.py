"""optimize_for_inference: BatchNorm / activation folding, oneDNN weight packing, and what it refuses."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import segzoo
from segzoo import CheckpointError, create_model, optimize_for_inference, save_pretrained
from segzoo.inference.optimize import FusedConv2d, fold_batch_norm, is_optimized_for_inference
from segzoo.layers import ConvBnAct
from segzoo.testing import randomize_batch_norm

packing = pytest.mark.skipif(not segzoo.inference.optimize.packed_conv.packing_available(),
                             reason="this torch build has no oneDNN packing")


def count(model, kind):
    return sum(type(module) is kind for module in model.modules())


@pytest.mark.parametrize("bias, affine, groups",
                         [(False, True, 1), (True, True, 1), (True, False, 2), (False, True, 8)])
def test_fold_batch_norm_equals_conv_then_batch_norm(bias, affine, groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=groups, bias=bias)
    bn = randomize_batch_norm(nn.BatchNorm2d(16, affine=affine)).eval()
    x = torch.randn(2, 8, 11, 13)
    weight, folded_bias = fold_batch_norm(conv.weight, conv.bias, bn)
    expected = bn(conv(x))
    got = F.conv2d(x, weight, folded_bias, padding=2, dilation=2, groups=groups)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_every_conv_bn_relu_of_a_resnet18_fcn_is_folded():
    model = randomize_batch_norm(create_model("fcn_resnet18", num_classes=3)).eval()
    fast = optimize_for_inference(model)
    fused = [module for module in fast.modules() if isinstance(module, FusedConv2d)]
    # ResNet-18: stem conv, 16 block convs, 3 downsample convs; FCN head: ConvBnAct + classifier.
    assert len(fused) == 22 and count(fast, nn.Conv2d) == 0
    assert sum(m.folded_batch_norm for m in fused) == 21 and count(fast, nn.BatchNorm2d) == 0
    # conv-BN-ReLU: stem, the first conv of each of the 8 blocks, the FCN block (the others add first)
    assert sum(m.slope == 0.0 for m in fused) == 10 and count(fast, nn.ReLU) == 8
    for size in ((64, 64), (45, 61)):
        images = torch.randn(2, 3, *size)
        with torch.inference_mode():
            torch.testing.assert_close(fast(images), model(images), rtol=1e-4, atol=1e-5)


def test_the_original_is_left_alone_unless_inplace():
    model = create_model("fcn_resnet18", num_classes=3).eval()
    fast = optimize_for_inference(model)
    assert fast is not model and not is_optimized_for_inference(model) and is_optimized_for_inference(fast)
    assert count(model, nn.BatchNorm2d) == 21
    assert optimize_for_inference(model, inplace=True) is model and is_optimized_for_inference(model)


class Branchy(nn.Module):
    """Outputs read by more than one operation must keep their value, so those pairs are not folded."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.conv2, self.bn2, self.act2 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.ReLU()
        self.shared_bn = nn.BatchNorm2d(4)
        self.conv_a, self.conv_b = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        z = self.act(self.bn(y)) + y  # the conv's output is also read by the sum
        w = self.bn2(self.conv2(z))
        z = self.act2(w) - w  # the BatchNorm's output is also read by the difference
        return self.shared_bn(self.conv_a(z)) + self.shared_bn(self.conv_b(z))  # one BatchNorm, two convs


def test_outputs_read_twice_and_shared_batch_norms_are_not_folded():
    model = randomize_batch_norm(Branchy()).eval()
    x = torch.randn(2, 3, 9, 10)
    expected = model(x)
    fast = optimize_for_inference(model)
    assert not fast.conv.folded_batch_norm and type(fast.bn) is nn.BatchNorm2d and type(fast.act) is nn.ReLU
    assert fast.conv2.folded_batch_norm and fast.conv2.slope is None and type(fast.act2) is nn.ReLU
    assert type(fast.shared_bn) is nn.BatchNorm2d and not fast.conv_a.folded_batch_norm
    torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=1e-6)


class Recurrent(nn.Module):
    """The same conv -> BatchNorm -> LeakyReLU applied twice (as CCNet's recurrence does)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 1)
        self.block = ConvBnAct(6, 6, act="leaky_relu")

    def forward(self, x):
        return self.block(self.block(self.stem(x)))


def test_a_block_called_twice_is_folded_with_its_leaky_relu_slope():
    model = randomize_batch_norm(Recurrent()).eval()
    x = torch.randn(1, 3, 12, 12)
    fast = optimize_for_inference(model)
    assert fast.block.conv.folded_batch_norm and fast.block.conv.slope == 0.01
    assert type(fast.block.bn) is nn.Identity and type(fast.block.act) is nn.Identity
    out = fast(x)
    assert (out < 0).any()  # the negative slope is exercised
    torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-6)


class ReadsItsBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)) * self.bn.weight.view(1, -1, 1, 1)


def test_a_rewrite_that_breaks_the_forward_is_undone_and_reported():
    model = ReadsItsBatchNorm().eval()
    with pytest.raises(RuntimeError, match="would change ReadsItsBatchNorm's outputs.*forward fails.*unchanged"):
        optimize_for_inference(model, inplace=True)
    assert type(model.conv) is nn.Conv2d and type(model.bn) is nn.BatchNorm2d
    model(torch.randn(1, 3, 4, 4))


@packing
def test_packed_weights_follow_the_input_shape_and_the_dtype():
    model = randomize_batch_norm(ConvBnAct(3, 32)).eval()
    fast = optimize_for_inference(model)
    conv = fast.conv
    for shape in ((1, 3, 15, 15), (2, 3, 9, 20), (1, 3, 15, 15)):
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = fast(x)
        assert conv._packed_for == x.shape and conv.weight is None  # only the packed copy is kept
        assert out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-5)
    fast.double()  # unpacks, then converts: the float64 path is plain F.conv2d
    assert conv.weight.dtype == torch.float64 and conv._packed is None
    x = torch.randn(1, 3, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(fast(x), model.double()(x), rtol=1e-5, atol=1e-6)  # folded in float32


@packing
@pytest.mark.parametrize("activation", [nn.ReLU(), nn.LeakyReLU(0.1), None])
def test_a_wide_convolution_in_input_channel_slices_gives_the_same_numbers(activation):
    """Both layouts that the first call times (whole, and 3 slices of at most 32 input channels accumulated in
    place) equal conv -> BN -> activation, and whichever is kept serves the later calls."""
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(80, 16, 3, padding=2, dilation=2), randomize_batch_norm(nn.BatchNorm2d(16)).eval()
    layers = [conv, bn] + ([activation] if activation is not None else [])
    reference = nn.Sequential(*layers).eval()
    fused = FusedConv2d(conv, bn, activation)
    fused.input_chunk = 32
    x = torch.randn(2, 80, 9, 11).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = reference(x)
        weight = fused._dense_weight()
        layouts = [fused._pack_whole(weight, x.shape), fused._pack_sliced(weight, x.shape)]
        assert fused._is_wide() and [len(packs) for packs in layouts] == [1, 3]
        for packs in layouts:
            for images in (x, x.contiguous()):
                torch.testing.assert_close(fused._run_packed(images, packs), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)
        assert fused.input_chunks in (1, 3) and len(fused._packed) == fused.input_chunks
        torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)
    fused.double()  # the slices are joined back into one plain weight
    assert fused._packed is None and fused.weight.shape == (16, 80, 3, 3)
    torch.testing.assert_close(fused(x.double()), reference.double()(x.double()), rtol=1e-5, atol=1e-6)


@packing
def test_narrow_or_1x1_convolutions_are_packed_whole():
    x = torch.randn(1, 64, 8, 8)
    for conv in (nn.Conv2d(64, 8, 1), nn.Conv2d(63, 8, 3, padding=1), nn.Conv2d(64, 8, 3, groups=2)):
        fused = FusedConv2d(conv)
        fused.input_chunk = 32
        assert not fused._is_wide()
        with torch.inference_mode():
            fused(x[:, :conv.in_channels].contiguous())
        assert fused.input_chunks == 1


def test_without_onednn_and_with_input_gradients_the_plain_path_gives_the_same_numbers(monkeypatch):
    model = randomize_batch_norm(create_model("fcn_resnet18", num_classes=3)).eval()
    fast = optimize_for_inference(model)
    images = torch.randn(1, 3, 40, 56)
    with monkeypatch.context() as patch, torch.no_grad():
        patch.setattr(torch.backends.mkldnn, "enabled", False)  # torch's own switch, as a user would flip it
        torch.testing.assert_close(fast(images), model(images), rtol=1e-4, atol=1e-5)
        assert all(m._packed is None for m in fast.modules() if isinstance(m, FusedConv2d))
    x = images.clone().requires_grad_()
    fast(x).sum().backward()
    y = images.clone().requires_grad_()
    model(y).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-5)


def test_training_or_saving_an_optimized_model_is_refused(tmp_path):
    fast = optimize_for_inference(create_model("fcn_resnet18", num_classes=3))
    with pytest.raises(CheckpointError, match="optimize_for_inference.*save the original model"):
        save_pretrained(fast, tmp_path / "fused")
    assert not (tmp_path / "fused" / "model.safetensors").exists()
    fast.train()
    with pytest.raises(RuntimeError, match="serves inference only; train the original model"):
        fast(torch.randn(1, 3, 32, 32))


def test_any_image_model_can_be_optimized():
    torchvision = pytest.importorskip("torchvision")
    model = randomize_batch_norm(torchvision.models.resnet18(weights=None)).eval()
    fast = optimize_for_inference(model, example_size=(32, 32))
    assert count(fast, nn.BatchNorm2d) == 0 and count(fast, nn.Conv2d) == 0
    images = torch.randn(2, 3, 64, 48)
    with torch.inference_mode():
        torch.testing.assert_close(fast(images), model(images), rtol=1e-4, atol=1e-4)


def test_an_optimized_model_exports_with_plain_convolutions():
    model = randomize_batch_norm(create_model("fcn_resnet18", num_classes=3)).eval()
    fast = optimize_for_inference(model)
    images = torch.randn(1, 3, 48, 64)
    with torch.inference_mode():
        fast(images)  # packs the weights first: export must unpack them
    program = torch.export.export(fast, (images,))
    assert not any("mkldnn" in str(node.target) for node in program.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(images), model(images), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_runs_the_fused_layers_eagerly():
    model = randomize_batch_norm(create_model("fcn_resnet18", num_classes=3)).eval()
    compiled = torch.compile(optimize_for_inference(model))
    images = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(compiled(images), model(images), rtol=1e-4, atol=1e-5)


class BatchNormFirst(nn.Module):
    """BatchNorm -> 1x1 conv (folds into the conv's input side), and two BatchNorms that must not fold."""

    def __init__(self):
        super().__init__()
        self.bn_in, self.pointwise = nn.BatchNorm2d(3), nn.Conv2d(3, 8, 1)
        self.bn, self.act = nn.BatchNorm2d(8), nn.ReLU()
        self.bn_padded, self.conv3x3 = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1)  # padding sees the shift
        self.bn_shared, self.conv1x1 = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1)  # its output is also read by the sum

    def forward(self, x):
        y = self.act(self.bn(self.pointwise(self.bn_in(x))))
        y = self.conv3x3(self.bn_padded(y))
        z = self.bn_shared(torch.tanh(y))  # not a conv's output: nothing to fold it after
        return self.conv1x1(z) + z


def test_a_batch_norm_before_a_1x1_conv_is_folded_into_it_and_only_there():
    model = randomize_batch_norm(BatchNormFirst()).eval()
    x = torch.randn(2, 3, 9, 11)
    fast = optimize_for_inference(model)
    assert fast.pointwise.folded_input_batch_norm and fast.pointwise.folded_batch_norm and fast.pointwise.slope == 0
    assert type(fast.bn_in) is nn.Identity
    assert not fast.conv3x3.folded_input_batch_norm and type(fast.bn_padded) is nn.BatchNorm2d
    assert not fast.conv1x1.folded_input_batch_norm and type(fast.bn_shared) is nn.BatchNorm2d
    torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)


def test_jpu_folds_every_batch_norm_that_runs():
    model = randomize_batch_norm(create_model("fcn_resnet18", num_classes=3, neck="jpu")).eval()
    fast = optimize_for_inference(model)
    assert count(fast.neck, nn.BatchNorm2d) == 0  # depthwise BN -> pointwise 1x1: folded into the pointwise
    assert all(branch.pointwise.folded_input_batch_norm for branch in fast.neck.dilations)
    images = torch.randn(1, 3, 64, 80)
    with torch.inference_mode():
        torch.testing.assert_close(fast(images), model(images), rtol=1e-4, atol=1e-5)
