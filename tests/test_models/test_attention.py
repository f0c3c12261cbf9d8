"""Attention with dropout on the probabilities, computed in blocks
(mmwsss.models.utils.attention): equal to the explicit formula for a given mask,
forward and backward; equal to PyTorch's kernel without dropout; the random masks'
rate and scaling; the memory it saves; the choice of implementation."""
import pytest
import torch
import torch.nn.functional as F

from mmwsss.models.layers import ClassWiseTransformerLayer
from mmwsss.models.utils import attention as att
from mmwsss.models.utils.attention import (blocked_dropout_attention,
                                           dropout_attention,
                                           quantized_dropout_p)


def _qkv(shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()
            for _ in range(3)]


def _reference(q, k, v, keep, p):
    prob = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1]**0.5, -1)
    return (prob * keep / (1 - p)) @ v


@pytest.mark.parametrize('rows', [1, 7, 49, 50, 51, 120, 10**6])
def test_blocked_equals_formula_with_a_given_mask(rows):
    b, t, d, p = 3, 50, 8, 0.3
    q, k, v = _qkv((b, t, d))
    drop = torch.rand(b, t, t, generator=torch.Generator().manual_seed(1)) < p
    calls = []

    def mask_fn(shape, start):
        b0, s = start
        calls.append((shape, start))
        return drop[b0:b0 + shape[0], s:s + shape[1]]

    out = blocked_dropout_attention(q, k, v, p, block_rows=rows,
                                    mask_fn=mask_fn)
    ref = _reference(q, k, v, ~drop, p)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    grad = torch.randn_like(ref)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(ref, (q, k, v), grad)
    for g1, g2 in zip(got, want):
        torch.testing.assert_close(g1, g2, rtol=0, atol=1e-11)
    # every (entry, query) row is in exactly one block
    covered = torch.zeros(b, t, dtype=torch.long)
    for shape, (b0, s) in calls:
        covered[b0:b0 + shape[0], s:s + shape[1]] += 1
    assert covered.eq(1).all()


def test_leading_dimensions_and_gradcheck():
    q, k, v = _qkv((2, 3, 2, 9, 4))  # (G, K, heads, T, d)
    drop = torch.rand(12, 9, 9, generator=torch.Generator().manual_seed(2)) < .2

    def mask_fn(shape, start):
        return drop[start[0]:start[0] + shape[0], start[1]:start[1] + shape[1]]

    out = blocked_dropout_attention(q, k, v, 0.2, block_rows=4,
                                    mask_fn=mask_fn)
    assert out.shape == (2, 3, 2, 9, 4)
    ref = _reference(q, k, v, ~drop.view(2, 3, 2, 9, 9), 0.2)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda a, b_, c: blocked_dropout_attention(
            a, b_, c, 0.2, block_rows=4, mask_fn=mask_fn), (q, k, v))


def test_without_dropout_equals_pytorch_sdpa():
    q, k, v = _qkv((2, 4, 33, 16), dtype=torch.float32)
    out = blocked_dropout_attention(q, k, v, 0.0, block_rows=10)
    ref = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(ref)
    for g1, g2 in zip(torch.autograd.grad(out, (q, k, v), grad),
                      torch.autograd.grad(ref, (q, k, v), grad)):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)


def test_random_masks_rate_scaling_and_seed():
    assert quantized_dropout_p(0.1) == 6554 / 65536
    assert quantized_dropout_p(0.0) == 0.0
    # uniform 16-bit fields: every field of the 64-bit draws drops at rate p
    # (a generator call that leaves the sign bit 0 would never drop in one field)
    for p in (0.1, 0.5):
        torch.manual_seed(0)
        drop = att._random_drop(p)((8, 1000), (0, 0)).flatten()
        for field in range(4):
            rate = drop[field::4].float().mean().item()
            assert abs(rate - quantized_dropout_p(p)) < 0.03, (p, field, rate)
    # kept weights are scaled by 1 / (1 - p): with all-equal values the output
    # is the kept mass / (1 - p), 1 on average
    q = torch.zeros(1, 64, 4)
    k = torch.zeros(1, 64, 4)
    v = torch.ones(1, 64, 4)
    torch.manual_seed(1)
    out = blocked_dropout_attention(q, k, v, 0.5, block_rows=16)
    assert out.std() > 0.01  # masks differ per weight
    assert abs(out.mean().item() - 1.0) < 0.02
    torch.manual_seed(3)
    a = blocked_dropout_attention(q, k, v, 0.5)
    torch.manual_seed(3)
    b = blocked_dropout_attention(q, k, v, 0.5)
    assert torch.equal(a, b)


def _saved_bytes(fn, *args):
    seen = {}

    def pack(t):
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args).sum().backward()
    return sum(seen.values())


def test_saves_boolean_masks_instead_of_attention_matrices():
    q, k, v = _qkv((8, 256, 16), dtype=torch.float32)
    weights = 8 * 256 * 256
    blocked = _saved_bytes(
        lambda a, b, c: blocked_dropout_attention(a, b, c, 0.1), q, k, v)
    sdpa = _saved_bytes(
        lambda a, b, c: F.scaled_dot_product_attention(a, b, c, dropout_p=0.1),
        q, k, v)
    # q, k, v, the output, the log-sum-exp and the masks (1 byte per weight,
    # seen by the saved-tensor hooks)
    expected = 4 * q.numel() * 4 + 8 * 256 * 4 + weights
    assert blocked == expected
    assert sdpa >= 8 * weights  # PyTorch's CPU path: float weights and mask


def test_dropout_attention_chooses_the_implementation(monkeypatch):
    calls = []
    monkeypatch.setattr(att, 'blocked_dropout_attention',
                        lambda *a, **kw: calls.append('blocked') or a[0])
    q = torch.randn(1, 5, 4)
    dropout_attention(q, q, q, 0.1)
    assert calls == ['blocked']
    dropout_attention(q, q, q, 0.0)
    dropout_attention(q, q, q, 0.1, impl='sdpa')
    assert calls == ['blocked']
    dropout_attention(q, q, q, 0.0, impl='blocked')
    assert calls == ['blocked', 'blocked']
    with pytest.raises(ValueError, match="'auto', 'sdpa' or 'blocked'"):
        dropout_attention(q, q, q, impl='flash')


def test_bad_arguments():
    q = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        blocked_dropout_attention(q, q, q, 1.0)
    with pytest.raises(ValueError, match='expected'):
        blocked_dropout_attention(q, q, torch.randn(2, 6, 4))
    with pytest.raises(ValueError, match='attn_impl'):
        ClassWiseTransformerLayer(2, 8, attn_impl='fused')


def test_transformer_layer_same_function_either_way():
    torch.manual_seed(0)
    layer = ClassWiseTransformerLayer(3, 16, num_heads=2, ffn_channels=32,
                                      dropout=0.0, attn_drop=0.3,
                                      attn_impl='blocked')
    x = torch.randn(2, 3, 20, 16)
    layer.eval()  # no dropout: the implementations agree exactly
    out_blocked = layer(x)
    layer.attn_impl = 'sdpa'
    torch.testing.assert_close(layer(x), out_blocked, rtol=1e-5, atol=1e-5)
    # training with attention dropout: the two draw different masks from the
    # same distribution, so the Monte-Carlo means of the outputs agree within
    # their standard error (a missing 1 / (1 - p) would be off by many)
    layer.train()
    n = 200
    stats = []
    for impl in ('blocked', 'sdpa'):
        layer.attn_impl = impl
        torch.manual_seed(1)
        with torch.no_grad():
            draws = torch.stack([layer(x) for _ in range(n)])
        assert draws.std(0).mean() > 1e-2
        stats.append((draws.mean(0), draws.var(0) / n))
    (m1, v1), (m2, v2) = stats
    diff = (m1 - m2).abs().mean()
    se = (v1 + v2).sqrt().mean()
    assert diff < 1.2 * se, (diff, se)  # E|N(0, se)| = 0.8 se
