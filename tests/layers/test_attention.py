"""Memory-lean attention against naive dense references (explicit full matrices, explicit masks):
forward and gradient to 1e-5."""
import pytest
import torch

from segzoo.heads.danet import PositionAttention
from segzoo.heads.ocnet import ObjectContext
from segzoo.layers import ChannelAttention, CrissCrossAttention, spatial_attention


@pytest.fixture(autouse=True, scope="module")
def _float64():
    """Compare algorithms, not float32 rounding."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def dense_attention(q, k, v, scale, softmax_over):
    scores = q @ k.transpose(-1, -2) * scale  # (B, N, M), the full matrix
    attention = scores.softmax(dim=-1 if softmax_over == "keys" else -2)
    return attention @ v


def dense_criss_cross(q, k, v):
    """Explicit (HW x HW) mask of the criss-cross neighbourhood; one softmax over the H + W - 1 candidates."""
    batch, _, height, width = q.shape
    rows = torch.arange(height).repeat_interleave(width)
    cols = torch.arange(width).repeat(height)
    allowed = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])
    assert allowed.sum(1).eq(height + width - 1).all()
    scores = q.flatten(2).transpose(1, 2) @ k.flatten(2)
    attention = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    out = attention @ v.flatten(2).transpose(1, 2)
    return out.transpose(1, 2).reshape(v.shape)


def check_grads(fast_fn, dense_fn, *inputs):
    inputs_fast = [x.clone().requires_grad_() for x in inputs]
    inputs_dense = [x.clone().requires_grad_() for x in inputs]
    fast, dense = fast_fn(*inputs_fast), dense_fn(*inputs_dense)
    torch.testing.assert_close(fast, dense, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(fast)
    (fast * weights).sum().backward()
    (dense * weights).sum().backward()
    for a, b in zip(inputs_fast, inputs_dense):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("softmax_over", ["keys", "queries"])
@pytest.mark.parametrize("max_elements", [7, 64, 1 << 24])  # many uneven chunks .. one chunk
def test_spatial_attention_matches_dense(softmax_over, max_elements):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 30, 8), torch.randn(2, 30, 8), torch.randn(2, 30, 24)  # value width != key width
    check_grads(lambda q, k, v: spatial_attention(q, k, v, 0.7, softmax_over, max_elements),
                lambda q, k, v: dense_attention(q, k, v, 0.7, softmax_over), q, k, v)


@pytest.mark.parametrize("threads", [2, 3])
def test_one_image_sdpa_with_its_queries_as_a_batch_matches_dense(threads):
    """Inference on the CPU with one image cuts the queries into one batch entry per thread (the last padded
    with zero queries when 31 does not divide)."""
    torch.manual_seed(0)
    q, v = torch.randn(1, 31, 8), torch.randn(1, 31, 8)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            out = spatial_attention(q, q, v, 0.5)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(out, dense_attention(q, q, v, 0.5, "keys"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("softmax_over", ["keys", "queries"])
def test_spatial_attention_never_builds_the_full_matrix(monkeypatch, softmax_over):
    """With a budget of 64 scores, no softmax (every score passes through one) may see more than 64 scores
    per batch element, and the result is still the dense one."""
    largest = []
    original = torch.softmax

    def spy(scores, dim):
        largest.append(scores.shape[-2] * scores.shape[-1])
        return original(scores, dim)

    q, k, v = torch.randn(1, 40, 4), torch.randn(1, 40, 4), torch.randn(1, 40, 6)
    monkeypatch.setattr(torch, "softmax", spy)
    out = spatial_attention(q, k, v, 1.0, softmax_over, max_elements=64)
    assert largest and max(largest) <= 64
    monkeypatch.undo()
    torch.testing.assert_close(out, dense_attention(q, k, v, 1.0, softmax_over))


@pytest.mark.parametrize("softmax_over", ["keys", "queries"])
def test_danet_position_attention(softmax_over):
    torch.manual_seed(0)
    module = PositionAttention(16, 4, softmax_over)
    torch.nn.init.constant_(module.gamma, 0.5)
    x = torch.randn(2, 16, 5, 7)

    def dense(x):
        q = module.query(x).flatten(2).transpose(1, 2)
        k = module.key(x).flatten(2).transpose(1, 2)
        v = module.value(x).flatten(2).transpose(1, 2)
        out = dense_attention(q, k, v, 1.0, softmax_over)
        return module.gamma * out.transpose(1, 2).reshape(x.shape) + x

    check_grads(module, dense, x)


def test_danet_channel_attention():
    torch.manual_seed(0)
    module = ChannelAttention()
    torch.nn.init.constant_(module.gamma, 0.3)
    x = torch.randn(2, 6, 4, 5)

    def dense(x):
        flat = x.flatten(2)
        energy = flat @ flat.transpose(1, 2)
        energy = energy.max(-1, keepdim=True)[0] - energy
        return module.gamma * (energy.softmax(-1) @ flat).reshape(x.shape) + x

    check_grads(module, dense, x)


@pytest.mark.parametrize("scale", [1, 2])
def test_ocnet_object_context(scale):
    torch.manual_seed(0)
    module = ObjectContext(12, 6, 8, 12, scale=scale, act="relu").eval()
    torch.nn.init.normal_(module.out_proj.weight)
    x = torch.randn(2, 12, 7, 9)

    def dense(x):
        pooled = torch.nn.functional.max_pool2d(x, scale) if scale > 1 else x
        qk = module.key_query(pooled).flatten(2).transpose(1, 2)
        v = module.value(pooled).flatten(2).transpose(1, 2)
        out = dense_attention(qk, qk, v, 6 ** -0.5, "keys").transpose(1, 2).reshape(2, 8, *pooled.shape[-2:])
        out = module.out_proj(out)
        if scale > 1:
            out = torch.nn.functional.interpolate(out, x.shape[-2:], mode="bilinear", align_corners=True)
        return out

    check_grads(module, dense, x)


@pytest.mark.parametrize("size", [(5, 7), (1, 4), (6, 1)])
def test_criss_cross_matches_dense_masks(size):
    torch.manual_seed(0)
    module = CrissCrossAttention(16, 4)
    torch.nn.init.constant_(module.gamma, 0.7)
    x = torch.randn(2, 16, *size)

    def dense(x):
        return module.gamma * dense_criss_cross(module.query(x), module.key(x), module.value(x)) + x

    check_grads(module, dense, x)


def test_ocnet_out_projection_starts_at_zero():
    module = ObjectContext(8, 4, 4, 8)
    assert module.out_proj.weight.abs().sum() == 0 and module.out_proj.bias.abs().sum() == 0
