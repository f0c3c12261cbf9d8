"""Grad-CAM inside the graph, GAIN's soft mask and the second-stream helpers
(Li et al., "Tell Me Where to Look: Guided Attention Inference Network", CVPR
2018, Eqs. 1-4)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.models.utils import (bn_eval, detached_call, erase_inputs,
                                 gap_linear_grad_cam, grad_cam,
                                 minmax_normalize, soft_mask)


class TinyCNN(nn.Module):
    """conv -> ReLU -> conv -> ReLU (the feature map f) -> a non-linear head:
    1x1 conv -> ReLU -> global max pooling -> linear."""

    def __init__(self, k=4, c=6):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(),
            nn.Conv2d(5, c, 3, padding=1), nn.ReLU())
        self.mid = nn.Conv2d(c, 8, 1)
        self.fc = nn.Linear(8, k)

    def head(self, f):
        return self.fc(F.relu(self.mid(f)).amax(dim=(2, 3)))

    def forward(self, x):
        return self.head(self.body(x))


def _hook_grad_cam(model, x, pairs):
    """The classic Grad-CAM: forward / full backward hooks on the feature layer,
    one ``.backward`` per (image, class) pair."""
    store = {}
    layer = model.body
    h1 = layer.register_forward_hook(
        lambda m, i, o: store.__setitem__('f', o))
    h2 = layer.register_full_backward_hook(
        lambda m, gi, go: store.__setitem__('g', go[0]))
    maps = []
    try:
        for b, c in pairs:
            model.zero_grad()
            xb = x.clone().requires_grad_()
            logits = model(xb)
            logits[b, c].backward()
            w = store['g'][b].mean(dim=(1, 2), keepdim=True)
            maps.append(F.relu((w * store['f'][b].detach()).sum(0)))
    finally:
        h1.remove()
        h2.remove()
        model.zero_grad(set_to_none=True)
    return torch.stack(maps)[:, None]


def _setup(seed=0, n=3, k=4):
    torch.manual_seed(seed)
    model = TinyCNN(k=k)
    x = torch.randn(n, 3, 7, 9)
    f = model.body(x)
    return model, x, f, model.head(f)


PAIRS = torch.tensor([[0, 1], [0, 3], [1, 0], [2, 2], [2, 1], [2, 3]])


def test_soft_mask_bounds_and_monotonicity():
    a = torch.linspace(-1, 2, 301, dtype=torch.float64)
    t = soft_mask(a, sigma=0.5, omega=10.)
    assert ((t > 0) & (t < 1)).all()
    assert (t[1:] > t[:-1]).all()  # strictly increasing
    assert soft_mask(torch.tensor(0.5)).item() == pytest.approx(0.5)
    assert soft_mask(torch.tensor(0.3), sigma=0.3, omega=77.).item() == \
        pytest.approx(0.5)
    assert soft_mask(torch.tensor(0.)).item() == pytest.approx(0.0067, abs=1e-4)
    assert soft_mask(torch.tensor(1.)).item() == pytest.approx(0.9933, abs=1e-4)
    # Eq. 3 with the shared erase: |I*| <= |I|, I* = I where T = 0
    x = torch.randn(2, 3, 5, 6)
    t = soft_mask(torch.rand(2, 1, 5, 6))
    t[0, 0, 0, 0] = 0.
    out = erase_inputs(x, list(t), [(5, 6)] * 2)
    torch.testing.assert_close(out, x * (1 - t))
    assert (out.abs() <= x.abs()).all()
    assert torch.equal(out[0, :, 0, 0], x[0, :, 0, 0])


def test_minmax_normalize_range_constant_and_valid_area():
    maps = torch.randn(3, 2, 5, 7) * 4 + 2
    out = minmax_normalize(maps)
    torch.testing.assert_close(out.amin(dim=(2, 3)), torch.zeros(3, 2))
    torch.testing.assert_close(out.amax(dim=(2, 3)), torch.ones(3, 2))
    # scale-free above eps: the same maps for Grad-CAM-sized values
    torch.testing.assert_close(minmax_normalize(maps * 1e-4), out)
    const = minmax_normalize(torch.full((1, 1, 4, 4), 3.))
    assert torch.equal(const, torch.zeros(1, 1, 4, 4))
    # valid area: min / max over it only, values outside (padding) do not matter
    valid = torch.zeros(1, 1, 5, 7, dtype=torch.bool)
    valid[..., :3, :4] = True
    m = torch.rand(1, 1, 5, 7)
    junk = m.clone()
    junk[~valid] = 1000.
    a, b = minmax_normalize(m, valid), minmax_normalize(junk, valid)
    assert torch.equal(a, b)
    assert a[~valid].abs().sum() == 0
    torch.testing.assert_close(a[valid], minmax_normalize(m[..., :3, :4]).flatten())
    # no valid pixel, constant valid area: zeros, no NaN; differentiable
    m.requires_grad_()
    none = minmax_normalize(m, torch.zeros_like(valid))
    assert torch.equal(none, torch.zeros_like(none))
    minmax_normalize(m, valid).sum().backward()
    assert torch.isfinite(m.grad).all()


def test_grad_cam_matches_a_hook_based_reference():
    model, x, f, logits = _setup()
    maps = grad_cam(f, logits, PAIRS)
    ref = _hook_grad_cam(model, x, PAIRS.tolist())
    assert maps.shape == (len(PAIRS), 1, 7, 9)
    torch.testing.assert_close(maps, ref, atol=1e-6, rtol=1e-5)
    assert maps.sum() > 0


def test_batched_equals_looped_packed_and_index_pairs():
    model, x, f, logits = _setup()
    batched = grad_cam(f, logits, PAIRS)
    looped = torch.cat([grad_cam(f, logits, PAIRS[i:i + 1])
                        for i in range(len(PAIRS))])
    packed = grad_cam(f, logits, PAIRS, pack_images=True)
    two = grad_cam(f, logits, (PAIRS[:, 0], PAIRS[:, 1]))
    for other in (looped, packed, two):
        torch.testing.assert_close(batched, other, atol=1e-6, rtol=1e-5)
    empty = grad_cam(f, logits, torch.zeros(0, 2, dtype=torch.long))
    assert empty.shape == (0, 1, 7, 9)


def test_grad_cam_is_independent_of_the_other_images():
    model, x, f, logits = _setup()
    perm = torch.tensor([2, 0, 1])
    xp = x[perm]
    fp = model.body(xp)
    inv = torch.argsort(perm)  # image i of x is image inv[i] of xp
    pairs_p = torch.stack([inv[PAIRS[:, 0]], PAIRS[:, 1]], 1)
    torch.testing.assert_close(grad_cam(f, logits, PAIRS),
                               grad_cam(fp, model.head(fp), pairs_p),
                               atol=1e-6, rtol=1e-5)
    # one image alone gives its maps
    f1 = model.body(x[2:3])
    alone = grad_cam(f1, model.head(f1), torch.tensor([[0, 2], [0, 1]]))
    torch.testing.assert_close(grad_cam(f, logits, PAIRS)[3:5], alone,
                               atol=1e-6, rtol=1e-5)


def test_pack_images_only_for_independent_images():
    """With batch statistics in the head (train-mode BN) images interact: the
    unpacked rows stay exact (= one backward per pair), packing does not."""
    torch.manual_seed(1)
    f = torch.randn(3, 4, 5, 5, requires_grad=True)
    bn = nn.BatchNorm2d(4).train()
    fc = nn.Linear(4, 3)
    logits = fc(F.relu(bn(f)).mean((2, 3)))
    exact = torch.cat([grad_cam(f, logits, PAIRS[i:i + 1] % 3)
                       for i in range(len(PAIRS))])
    torch.testing.assert_close(grad_cam(f, logits, PAIRS % 3), exact)
    assert not torch.allclose(grad_cam(f, logits, PAIRS % 3,
                                       pack_images=True), exact, atol=1e-6)


def test_closed_form_equals_autograd_for_gap_linear():
    torch.manual_seed(2)
    f = torch.randn(2, 5, 4, 6, requires_grad=True)
    conv = nn.Conv2d(5, 3, 1)
    logits = conv(f).mean((2, 3))
    pairs = torch.tensor([[0, 0], [0, 2], [1, 1]])
    auto = grad_cam(f, logits, pairs)
    closed = gap_linear_grad_cam(f, conv.weight, pairs)
    torch.testing.assert_close(auto, closed, atol=1e-6, rtol=1e-5)
    # all classes: ReLU(CAM - bias) / (h w)
    cam = (conv(f) - conv.bias[:, None, None]).relu() / 24
    torch.testing.assert_close(gap_linear_grad_cam(f, conv.weight), cam)
    # second order: the same gradients for the conv weight
    g1 = torch.autograd.grad(
        grad_cam(f, logits, pairs, create_graph=True).square().sum(),
        conv.weight)[0]
    g2 = torch.autograd.grad(
        gap_linear_grad_cam(f, conv.weight, pairs).square().sum(),
        conv.weight)[0]
    torch.testing.assert_close(g1, g2, atol=1e-6, rtol=1e-5)


def test_first_order_weights_are_constant_and_no_grad_is_written():
    model, x, f, logits = _setup()
    params = list(model.parameters())
    maps = grad_cam(f, logits, PAIRS)
    assert all(p.grad is None for p in params)
    # first order: the maps reach the head only through f, not through w^c
    head_params = list(model.mid.parameters()) + list(model.fc.parameters())
    g = torch.autograd.grad(maps.sum(), head_params, allow_unused=True,
                            retain_graph=True)
    assert all(t is None or t.abs().sum() == 0 for t in g)
    maps2 = grad_cam(f, logits, PAIRS, create_graph=True)
    g2 = torch.autograd.grad(maps2.sum(), head_params, allow_unused=True,
                             retain_graph=True)
    assert any(t is not None and t.abs().sum() > 0 for t in g2)
    # ReLU head (piecewise linear): the backbone gradient is the same
    body = list(model.body.parameters())
    gb1 = torch.autograd.grad(maps.square().sum(), body, retain_graph=True)
    gb2 = torch.autograd.grad(maps2.square().sum(), body)
    for a, b in zip(gb1, gb2):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert all(p.grad is None for p in params)


def test_grad_cam_errors():
    model, x, f, logits = _setup()
    with pytest.raises(ValueError, match='does not require grad'):
        grad_cam(f.detach(), logits, PAIRS)
    with pytest.raises(ValueError, match='out of range'):
        grad_cam(f, logits, torch.tensor([[3, 0]]))
    with pytest.raises(ValueError, match=r'\(P, 2\)'):
        grad_cam(f, logits, torch.tensor([0, 1]))


def test_bn_eval_context_restores_modes_and_keeps_stats():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.BatchNorm2d(4))
    net.train()
    net[3].eval()  # a layer frozen by its owner stays frozen
    before = net[1].running_mean.clone()
    with bn_eval(net, None):
        assert not net[1].training and not net[3].training
        assert net[0].training  # other layers untouched
        net(torch.randn(2, 3, 4, 4))
    assert torch.equal(net[1].running_mean, before)
    assert net[1].training and not net[3].training
    with pytest.raises(RuntimeError, match='boom'):
        with bn_eval(net):
            raise RuntimeError('boom')
    assert net[1].training and not net[3].training


def test_detached_call_blocks_weight_gradients_only():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, 3)
    x = torch.randn(1, 3, 5, 5, requires_grad=True)
    out = detached_call(conv, x)
    torch.testing.assert_close(out, conv(x))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert conv.weight.grad is None and conv.bias.grad is None
    assert conv.weight.requires_grad  # never toggled
    lin = nn.Linear(2, 2)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return x

        def score(self, x):
            return self.lin(x)

    y = torch.randn(3, 2, requires_grad=True)
    s = detached_call(M(), y, method='score')
    torch.testing.assert_close(s, lin(y))
    s.sum().backward()
    assert lin.weight.grad is None and y.grad is not None
