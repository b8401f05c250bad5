"""Helpers for tests that need a model whose numbers are not trivially zero or one."""
import torch
from torch import nn


def randomize_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm running statistics and affine parameters away from (0, 1), so that folding
    them into a convolution changes its weights (freshly made layers would fold to the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.rand(shape, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(shape, generator=generator) * 1.5 + 0.5)
                if module.affine:
                    module.weight.copy_(1 + 0.2 * torch.randn(shape, generator=generator))
                    module.bias.copy_(0.2 * torch.randn(shape, generator=generator))
    return model
