"""The space-to-batch path of the dilated depthwise convolution equals torch's convolution exactly."""
import pytest
import torch
import torch.nn.functional as F

from segzoo.layers.depthwise import depthwise_conv2d


@pytest.mark.parametrize("size", [(16, 16), (15, 21), (9, 8)])
@pytest.mark.parametrize("dilation", [1, 2, 4, 8, 16])
def test_matches_torch_forward_and_backward(size, dilation):
    torch.manual_seed(0)
    x = torch.randn(2, 6, *size, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(6, 1, 3, 3, dtype=torch.float64)
    x1, w1 = x.clone().requires_grad_(), weight.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), weight.clone().requires_grad_()
    ours = depthwise_conv2d(x1, w1, dilation)
    reference = F.conv2d(x2, w2, padding=dilation, dilation=dilation, groups=6)
    torch.testing.assert_close(ours, reference, atol=1e-12, rtol=1e-12)
    grad = torch.randn_like(reference)
    (ours * grad).sum().backward()
    (reference * grad).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(w1.grad, w2.grad, atol=1e-12, rtol=1e-12)
