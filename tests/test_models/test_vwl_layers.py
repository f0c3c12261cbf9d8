"""VWL's building blocks (Ru et al., "Weakly supervised semantic segmentation by
visual words learning and hybrid pooling", IJCV 2023): hybrid pooling
(Eqs. 8-10), the visual word encoder (Eqs. 2-5), the learned and memory-bank
codebooks (Eqs. 6-7) and the DeCov loss (Eq. 13), checked against formulas
written out here with loops (and the official code's forms where they differ)."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from mmwsss.models.layers import (HybridPooling, LearnedCodebook,
                                  MemoryBankCodebook, VisualWordEncoder,
                                  hybrid_pooling, kmeans_codebook,
                                  local_max_pooling, sample_codebook,
                                  word_similarity)
from mmwsss.models.losses import DecorrelationLoss, decorrelation_loss
from mmwsss.registry import MODELS


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=_gen(seed)).to(dtype)


# ------------------------------------------------------------------ pooling
def _bins(size, r):
    """adaptive pooling's bins: [floor(i*size/r), ceil((i+1)*size/r))."""
    return [(i * size // r, -(-(i + 1) * size // r)) for i in range(r)]


def _hp_loops(x, gamma, sizes):
    """Eqs. 8-10 with explicit loops over images, channels and bins."""
    n, c, h, w = x.shape
    out = torch.zeros(n, c, dtype=x.dtype)
    for b, k in itertools.product(range(n), range(c)):
        m = x[b, k]
        gap = sum(float(m[i, j]) for i in range(h) for j in range(w)) / (h * w)
        total = gamma * gap
        for r in sizes:
            maxes = [float(m[y0:y1, x0:x1].max())
                     for (y0, y1) in _bins(h, r) for (x0, x1) in _bins(w, r)]
            total += sum(maxes) / (r * r)
        out[b, k] = total / (gamma + len(sizes))
    return out


@pytest.mark.parametrize('hw', [(8, 8), (6, 10)])
@pytest.mark.parametrize('gamma,sizes', [(2.0, (1, 2, 4)), (0.0, (1, 2)),
                                         (0.5, (1, 2, 4, 8))])
def test_hybrid_pooling_matches_loops(hw, gamma, sizes):
    x = _randn(2, 3, *hw, seed=1)
    out = hybrid_pooling(x, gamma=gamma, split_sizes=sizes)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, _hp_loops(x, gamma, sizes))
    module = HybridPooling(gamma=gamma, split_sizes=sizes)
    torch.testing.assert_close(module(x), out)


def test_hybrid_pooling_hand_made_4x4():
    # one 4x4 map: GMP 16, f_max_2 = mean(6, 8, 14, 16) = 11, f_max_4 = the mean
    # of all 16 values = 8.5 = GAP; Eq. 10 with gamma 2: (16 + 11 + 8.5 + 17) / 5
    x = torch.arange(1., 17.).view(1, 1, 4, 4)
    assert hybrid_pooling(x).item() == pytest.approx((16 + 11 + 8.5 + 17) / 5)
    assert local_max_pooling(x, 2).item() == pytest.approx(11.0)


def test_hybrid_pooling_order_and_limits():
    x = _randn(3, 5, 16, 16, seed=2)
    gap = x.mean(dim=(2, 3))
    gmp = x.amax(dim=(2, 3))
    m1, m2, m4 = (local_max_pooling(x, r) for r in (1, 2, 4))
    torch.testing.assert_close(m1, gmp)
    assert (gap <= m4).all() and (m4 <= m2).all() and (m2 <= m1).all()
    assert (m2 < m1).any() and (gap < m4).all()
    hp = hybrid_pooling(x)
    assert (gap < hp).all() and (hp < gmp).all()
    torch.testing.assert_close(
        hybrid_pooling(x, gamma=0.0, split_sizes=(1, )), gmp)
    torch.testing.assert_close(
        hybrid_pooling(x, gamma=1e9), gap, rtol=1e-6, atol=1e-7)
    # a constant map pools to the constant
    const = torch.full((2, 3, 8, 8), 0.7, dtype=torch.float64)
    torch.testing.assert_close(hybrid_pooling(const),
                               torch.full((2, 3), 0.7, dtype=torch.float64))


def test_hybrid_pooling_bin_modes():
    x = _randn(2, 3, 32, 32, seed=3)
    torch.testing.assert_close(
        hybrid_pooling(x, bin_mode='kernel'), hybrid_pooling(x))
    for r in (1, 2, 4):
        code = F.adaptive_avg_pool2d(
            F.max_pool2d(x, kernel_size=(32 // r, 32 // r)), 1).flatten(1)
        torch.testing.assert_close(local_max_pooling(x, r, 'kernel'), code)
    # 15 x 15, r = 4: the code's kernel 3 makes 5 x 5 bins, adaptive 4 x 4
    y = _randn(1, 2, 15, 15, seed=4)
    kernel = local_max_pooling(y, 4, 'kernel')
    five = torch.stack([y[0, :, 3 * i:3 * i + 3, 3 * j:3 * j + 3].amax((1, 2))
                        for i in range(5) for j in range(5)]).mean(0)
    torch.testing.assert_close(kernel[0], five)
    assert not torch.allclose(kernel, local_max_pooling(y, 4, 'adaptive'))
    with pytest.raises(ValueError, match='cannot be split'):
        local_max_pooling(_randn(1, 1, 3, 3), 4, 'kernel')
    for bad in (dict(gamma=-1.0), dict(split_sizes=(1, 1)),
                dict(split_sizes=(0, 2)), dict(gamma=0.0, split_sizes=()),
                dict(bin_mode='max')):
        with pytest.raises(ValueError):
            HybridPooling(**bad)


def test_hybrid_pooling_gradient():
    gamma, sizes, h, w = 2.0, (1, 2, 4), 8, 8
    x = _randn(1, 2, h, w, seed=5).requires_grad_()
    hybrid_pooling(x, gamma, sizes).sum().backward()
    expected = torch.full_like(x, gamma / (gamma + 3) / (h * w))
    for k in range(2):
        for r in sizes:
            for (y0, y1), (x0, x1) in itertools.product(_bins(h, r),
                                                        _bins(w, r)):
                patch = x[0, k, y0:y1, x0:x1].detach()
                i, j = divmod(int(patch.argmax()), x1 - x0)
                expected[0, k, y0 + i, x0 + j] += 1 / (r * r) / (gamma + 3)
    torch.testing.assert_close(x.grad, expected)


def test_hybrid_pooling_registry():
    hp = MODELS.build(dict(type='HybridPooling', gamma=1.0, split_sizes=(1, 2)))
    assert isinstance(hp, HybridPooling)
    x = _randn(2, 4, 8, 8, seed=6)
    torch.testing.assert_close(hp(x), _hp_loops(x, 1.0, (1, 2)))


# ----------------------------------------------------------- visual words
K, C = 6, 5


def _words(seed=0, n=2, h=4, w=5, k=K, c=C):
    return _randn(n, c, h, w, seed=seed), _randn(k, c, seed=seed + 100)


def test_similarity_matches_loops_and_is_scale_invariant():
    feats, codebook = _words(seed=1)
    sim = word_similarity(feats, codebook)
    n, _, h, w = feats.shape
    ref = torch.empty(n, K, h, w, dtype=feats.dtype)
    for b, j, y, x in itertools.product(range(n), range(K), range(h),
                                        range(w)):
        f = feats[b, :, y, x]
        ref[b, j, y, x] = f @ codebook[j] / (f.norm() * codebook[j].norm())
    torch.testing.assert_close(sim, ref)
    assert sim.abs().max() <= 1 + 1e-12
    enc = VisualWordEncoder(tau=2.0)
    out = enc(feats, codebook)
    scale_f = torch.rand(n, 1, h, w, generator=_gen(2)).double() * 5 + 0.1
    scale_c = torch.rand(K, 1, generator=_gen(3)).double() * 5 + 0.1
    out2 = enc(feats * scale_f, codebook * scale_c)
    torch.testing.assert_close(out2.similarity, out.similarity)
    torch.testing.assert_close(out2.probs, out.probs)
    assert torch.equal(out2.assignments, out.assignments)
    # a (K, C, 1, 1) conv weight is the same codebook
    torch.testing.assert_close(
        enc(feats, codebook[..., None, None]).probs, out.probs)
    with pytest.raises(ValueError, match='channels'):
        enc(feats, codebook[:, :-1])


def test_probs_temperature_and_argmax():
    feats, codebook = _words(seed=4)
    sim = word_similarity(feats, codebook)
    labels = {}
    for tau in (0.5, 1.0, 2.0):
        out = VisualWordEncoder(tau=tau)(feats, codebook)
        torch.testing.assert_close(out.probs, torch.softmax(tau * sim, dim=1))
        torch.testing.assert_close(out.probs.sum(1),
                                   torch.ones_like(out.probs[:, 0]))
        assert torch.equal(out.assignments, out.probs.argmax(1))
        assert out.assignments.dtype == torch.long
        labels[tau] = out.assignments
    assert torch.equal(labels[0.5], labels[1.0])
    assert torch.equal(labels[2.0], labels[1.0])
    cold = VisualWordEncoder(tau=1e-6)(feats, codebook).probs
    torch.testing.assert_close(
        cold, torch.full_like(cold, 1 / K), rtol=0, atol=1e-6)
    hot = VisualWordEncoder(tau=1e4)(feats, codebook)
    torch.testing.assert_close(
        hot.probs, F.one_hot(hot.assignments, K).permute(0, 3, 1, 2).double())
    for bad in (dict(tau=0.0), dict(tau=-1.0), dict(hist_reduce='max')):
        with pytest.raises(ValueError):
            VisualWordEncoder(**bad)


def test_word_labels_and_frequency():
    feats, codebook = _words(seed=5, k=16, h=3, w=3)
    out = VisualWordEncoder()(feats, codebook)
    n, _, h, w = feats.shape
    for b in range(n):
        present = {int(v) for v in out.assignments[b].flatten()}
        expected = torch.zeros(16, dtype=feats.dtype)
        expected[sorted(present)] = 1
        assert torch.equal(out.word_labels[b], expected)
        assert 1 <= out.word_labels[b].sum() <= min(16, h * w)
    assert out.word_labels.sum() < out.word_labels.numel()  # not all words
    torch.testing.assert_close(out.frequency, out.probs.mean(dim=(2, 3)))
    torch.testing.assert_close(out.frequency.sum(1),
                               torch.ones(n, dtype=feats.dtype))
    summed = VisualWordEncoder(hist_reduce='sum')(feats, codebook)
    torch.testing.assert_close(summed.frequency, out.frequency * (h * w))
    # every pixel a positive multiple of word 3: y_word = e_3
    scales = torch.rand(2, 1, 4, 4, generator=_gen(6)).double() + 0.5
    pure = codebook[3][None, :, None, None] * scales
    out = VisualWordEncoder()(pure, codebook)
    assert (out.assignments == 3).all()
    assert torch.equal(out.word_labels,
                       F.one_hot(torch.tensor([3, 3]), 16).double())


def test_valid_mask():
    feats, codebook = _words(seed=7, n=2, h=4, w=6)
    mask = torch.zeros(2, 4, 6, dtype=torch.bool)
    mask[0, :3, :4] = True  # image 0: a 3 x 4 valid area
    enc = VisualWordEncoder()
    out = enc(feats, codebook, valid_mask=mask)
    crop = enc(feats[:1, :, :3, :4], codebook)
    assert torch.equal(out.assignments[0, :3, :4], crop.assignments[0])
    assert (out.assignments[~mask] == -1).all()
    assert torch.equal(out.word_labels[0], crop.word_labels[0])
    torch.testing.assert_close(out.frequency[0], crop.frequency[0])
    # image 1 has no valid pixel: no word, no frequency
    assert out.word_labels[1].sum() == 0 and out.frequency[1].abs().sum() == 0
    summed = VisualWordEncoder(hist_reduce='sum')(feats, codebook, mask)
    torch.testing.assert_close(summed.frequency[0], crop.frequency[0] * 12)
    assert torch.equal(enc.assign(feats, codebook, mask), out.assignments)


@pytest.mark.parametrize('detach', [True, False])
def test_encoder_gradient_routing(detach):
    feats, _ = _words(seed=8)
    feats.requires_grad_()
    book = LearnedCodebook(K, C).double()
    out = VisualWordEncoder(detach_features=detach)(feats, book())
    weights = _randn(*out.frequency.shape, seed=9)
    (out.frequency * weights).sum().backward()
    assert book.weight.grad is not None and book.weight.grad.abs().sum() > 0
    if detach:
        assert feats.grad is None
    else:
        assert feats.grad.abs().sum() > 0
    assert not out.word_labels.requires_grad
    assert not out.assignments.requires_grad


# -------------------------------------------------------------- codebooks
def test_learned_codebook():
    torch.manual_seed(0)
    book = MODELS.build(dict(type='LearnedCodebook', num_words=256,
                             channels=512))
    assert isinstance(book, LearnedCodebook)
    names = dict(book.named_parameters())
    assert list(names) == ['weight'] and names['weight'].requires_grad
    assert book().shape == (256, 512) and book() is book.weight
    # kaiming_normal_(a=sqrt(5)), fan-in C: std sqrt(2 / (1 + 5) / C)
    assert book.weight.std().item() == pytest.approx(
        math.sqrt(1 / (3 * 512)), rel=0.02)
    assert abs(book.weight.mean().item()) < 1e-3
    assert not book.needs_init
    assert 'initialized' in book.state_dict()


def test_sample_init():
    feats, _ = _words(seed=10, n=2, h=3, w=4)
    flat = feats.permute(0, 2, 3, 1).reshape(-1, C).float()
    for cls in (LearnedCodebook, MemoryBankCodebook):
        book = cls(K, C, init='sample')
        assert book.needs_init
        book.init_from_features(feats, generator=_gen(11))
        assert not book.needs_init
        # every word is one of the pixel features
        dist = torch.cdist(book.codebook.detach(), flat)
        assert dist.min(1).values.max() < 1e-6
        again = cls(K, C, init='sample')
        again.init_from_features(feats, generator=_gen(11))
        assert torch.equal(again.codebook, book.codebook)
    # only valid pixels are drawn
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    mask[1, 2, 3] = True
    drawn = sample_codebook(feats, 4, valid_mask=mask, generator=_gen(0))
    assert torch.equal(drawn, feats[1, :, 2, 3].expand(4, C))
    with pytest.raises(ValueError):
        LearnedCodebook(K, C, init='zeros')


def test_memory_bank_codebook_is_a_buffer():
    bank = MODELS.build(dict(type='MemoryBankCodebook', num_words=K,
                             channels=C))
    assert list(bank.parameters()) == []
    assert set(bank.state_dict()) == {'codebook', 'initialized'}
    assert bank.codebook.shape == (K, C)
    assert bank.codebook.dtype == torch.float32
    assert not bank.codebook.requires_grad
    feats, _ = _words(seed=12)
    out = VisualWordEncoder()(feats.float().requires_grad_(), bank())
    assert not out.frequency.requires_grad
    before = bank.codebook.clone()
    bank.update(feats, out.assignments)
    assert bank.codebook.dtype == torch.float32
    assert not torch.equal(bank.codebook, before)


def _ema_loop(codebook, feats, assignments, rho, update_empty, eps=0.0):
    """Eqs. 6-7 word by word."""
    flat = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    labels = assignments.reshape(-1)
    new = codebook.clone()
    for j in range(codebook.shape[0]):
        rows = [flat[i] for i in range(len(labels)) if int(labels[i]) == j]
        if rows:
            mean = sum(rows) / (len(rows) + eps)
            new[j] = rho * mean + (1 - rho) * codebook[j]
        elif update_empty:
            new[j] = (1 - rho) * codebook[j]
    return new


@pytest.mark.parametrize('update_empty,eps', [(True, 0.0), (False, 0.0),
                                              (True, 1e-4)])
def test_memory_bank_update_matches_loop(update_empty, eps):
    k = 12
    feats = _randn(2, C, 3, 3, seed=13)
    bank = MemoryBankCodebook(k, C, rho=0.3, update_empty_words=update_empty,
                              mean_eps=eps).double()
    start = bank.codebook.clone()
    assignments = VisualWordEncoder()(feats, bank()).assignments
    counts = torch.bincount(assignments.flatten(), minlength=k)
    assert (counts == 0).any() and (counts > 1).any()
    bank.update(feats, assignments)
    expected = _ema_loop(start, feats, assignments, 0.3, update_empty, eps)
    torch.testing.assert_close(bank.codebook, expected)
    empty = counts == 0
    if update_empty:
        torch.testing.assert_close(bank.codebook[empty], 0.7 * start[empty])
    else:
        assert torch.equal(bank.codebook[empty], start[empty])


def test_memory_bank_rho_limits_and_single_word():
    feats = _randn(2, C, 3, 3, seed=14)
    assignments = torch.randint(K, (2, 3, 3), generator=_gen(15))
    assignments[0, 0, 0] = 0
    frozen = MemoryBankCodebook(K, C, rho=0.0).double()
    start = frozen.codebook.clone()
    frozen.update(feats, assignments)
    assert torch.equal(frozen.codebook, start)
    full = MemoryBankCodebook(K, C, rho=1.0).double()
    sums, counts = full.update(feats, assignments)
    torch.testing.assert_close(full.codebook, full.reconstruct(sums, counts))
    torch.testing.assert_close(
        full.codebook[0], feats.permute(0, 2, 3, 1)[assignments == 0].mean(0))
    # every pixel the same vector v, assigned to word 2
    v = _randn(C, seed=16)
    bank = MemoryBankCodebook(K, C, rho=1e-3).double()
    c0 = bank.codebook.clone()
    bank.update(v[None, :, None, None].expand(2, C, 3, 3),
                torch.full((2, 3, 3), 2))
    torch.testing.assert_close(bank.codebook[2], 1e-3 * v + (1 - 1e-3) * c0[2])
    with pytest.raises(ValueError):
        MemoryBankCodebook(K, C, rho=1.5)


def test_memory_bank_compute_apply_split_and_ranks():
    feats = _randn(4, C, 3, 3, seed=17)
    assignments = torch.randint(K, (4, 3, 3), generator=_gen(18))
    assignments[3, 1] = -1  # ignored pixels
    one = MemoryBankCodebook(K, C, rho=0.2).double()
    two = MemoryBankCodebook(K, C, rho=0.2).double()
    ranks = MemoryBankCodebook(K, C, rho=0.2).double()
    two.load_state_dict(one.state_dict())
    ranks.load_state_dict(one.state_dict())
    one.update(feats, assignments)
    sums, counts = two.compute_update(feats, assignments)
    assert counts.sum() == 4 * 9 - 3
    two.apply_update(sums, counts)
    assert torch.equal(one.codebook, two.codebook)
    # two simulated ranks: the summed statistics give the full-batch update
    s0, n0 = ranks.compute_update(feats[:2], assignments[:2])
    s1, n1 = ranks.compute_update(feats[2:], assignments[2:])
    ranks.apply_update(s0 + s1, n0 + n1)
    torch.testing.assert_close(ranks.codebook, one.codebook)
    # the ignored pixels count nowhere
    kept = MemoryBankCodebook(K, C).double()
    sk, nk = kept.compute_update(
        feats[3:].permute(0, 2, 3, 1)[assignments[3:] >= 0],
        assignments[3:][assignments[3:] >= 0])
    s3, n3 = kept.compute_update(feats[3:], assignments[3:])
    torch.testing.assert_close(s3, sk)
    assert torch.equal(n3, nk)
    with pytest.raises(ValueError, match='assignments'):
        kept.compute_update(feats, assignments[:2])


def _clusters(seed, per=32, noise=0.05):
    dirs = torch.eye(8, dtype=torch.float64)[:4] * torch.tensor(
        [1., 2., 3., 4.], dtype=torch.float64)[:, None]
    pts = dirs.repeat_interleave(per, 0)
    return pts + noise * _randn(*pts.shape, seed=seed), dirs


def test_memory_bank_recovers_clusters():
    pts, dirs = _clusters(seed=19)
    means = torch.stack([pts[32 * i:32 * (i + 1)].mean(0) for i in range(4)])
    init = dirs * 3 + 0.2  # right directions, wrong scale and offset
    bank = MemoryBankCodebook(4, 8, rho=1.0).double()
    bank.codebook.copy_(init)
    for _ in range(3):
        labels = word_similarity(pts.T[None, :, :, None], bank()).argmax(1)
        bank.update(pts, labels.flatten())
    torch.testing.assert_close(bank.codebook, means)
    # rho = 1e-3 over fresh batches: the distance to the cluster centres falls
    slow = MemoryBankCodebook(4, 8, rho=1e-3).double()
    slow.codebook.copy_(init)
    dist = [(slow.codebook - dirs).norm().item()]
    for step in range(20):
        batch, _ = _clusters(seed=100 + step)
        labels = word_similarity(batch.T[None, :, :, None], slow()).argmax(1)
        slow.update(batch, labels.flatten())
        dist.append((slow.codebook - dirs).norm().item())
    assert all(b < a for a, b in zip(dist, dist[1:]))
    # k-means initialisation from the features: the four centres, in some order
    km = MemoryBankCodebook(4, 8, init='kmeans', kmeans_iters=10).double()
    found = kmeans_codebook(pts, dirs + 0.1, num_iters=5)
    torch.testing.assert_close(found, means)
    # the draw of generator seed 1 hits every cluster (checked), so k-means
    # from it finds the four means, in some order; the draw alone does not
    drawn = sample_codebook(pts, 4, generator=_gen(1))
    assert {int(torch.cdist(d[None], dirs).argmin()) for d in drawn} == {
        0, 1, 2, 3}
    assert torch.cdist(drawn, means).min(1).values.max() > 0.01
    km.init_from_features(pts, generator=_gen(1))
    assert not km.needs_init
    assert torch.cdist(km.codebook, means).min(1).values.max() < 1e-9
    assert len({int(i) for i in torch.cdist(km.codebook, means).argmin(1)}) == 4


# ------------------------------------------------------------------- DeCov
def _decov_loops(codebook, squared, normalize):
    k, c = codebook.shape
    mu = [sum(float(codebook[i, m]) for m in range(c)) / c for i in range(k)]
    cov = [[sum((float(codebook[i, m]) - mu[i]) * (float(codebook[j, m]) -
                                                     mu[j]) for m in range(c))
            / (c if normalize else 1) for j in range(k)] for i in range(k)]
    fro2 = sum(v * v for row in cov for v in row)
    diag2 = sum(cov[i][i]**2 for i in range(k))
    if squared:
        return 0.5 * (fro2 - diag2)
    return 0.5 * (math.sqrt(fro2) - math.sqrt(diag2))


@pytest.mark.parametrize('squared,normalize', list(
    itertools.product([True, False], [True, False])))
def test_decov_matches_loops(squared, normalize):
    codebook = _randn(5, 8, seed=21)
    loss = decorrelation_loss(codebook, squared=squared, normalize=normalize)
    assert loss.item() > 0
    assert loss.item() == pytest.approx(
        _decov_loops(codebook, squared, normalize), rel=1e-5)


def _hadamard8():
    h = torch.tensor([[1.]])
    for _ in range(3):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h.double()


def test_decov_orthogonal_minimum_and_duplicates():
    words = _hadamard8()[1:] * 0.3  # 7 zero-mean, mutually orthogonal rows
    for squared, normalize in itertools.product([True, False], [True, False]):
        kw = dict(squared=squared, normalize=normalize)
        assert decorrelation_loss(words, **kw).item() == pytest.approx(
            0.0, abs=1e-12)
        # a row offset (removed by the centring) changes nothing
        assert decorrelation_loss(words + 5.0, **kw).item() == pytest.approx(
            0.0, abs=1e-9)
        dup = words.clone()
        dup[1] = dup[0]
        half = words.clone()
        half[1] = 0.5 * (words[0] + words[1])
        l_half = decorrelation_loss(half, **kw).item()
        l_dup = decorrelation_loss(dup, **kw).item()
        assert 0 < l_half < l_dup
        assert decorrelation_loss(words[:1], **kw).item() == 0.0  # K = 1
    # squared, normalised: the duplicated pair contributes 2 * (0.09 * 8 / 8)^2
    dup = words.clone()
    dup[1] = dup[0]
    assert decorrelation_loss(dup).item() == pytest.approx(0.5 * 2 * 0.09**2)


def test_decov_official_form_and_gradient():
    torch.manual_seed(0)
    book = LearnedCodebook(16, 32)
    w = book.weight
    cc = w - w.mean(1, keepdim=True)
    gram = cc @ cc.t()
    code = 0.5 * (torch.linalg.norm(gram) - torch.linalg.norm(gram.diagonal()))
    loss = DecorrelationLoss(squared=False, normalize=False)(w)
    torch.testing.assert_close(loss, code)
    g_ref, = torch.autograd.grad(code, w)
    g, = torch.autograd.grad(loss, w)
    torch.testing.assert_close(g, g_ref)
    assert g.abs().sum() > 0
    # zero gradient at the minimum (squared form)
    words = (_hadamard8()[1:] * 0.3).float().requires_grad_()
    decorrelation_loss(words).backward()
    assert words.grad.abs().max() < 1e-7


def test_decov_module():
    loss = MODELS.build(dict(type='DecorrelationLoss', loss_weight=0.5))
    assert isinstance(loss, DecorrelationLoss)
    assert loss.loss_name == 'loss_decov'
    assert DecorrelationLoss(loss_name='loss_x').loss_name == 'loss_x'
    codebook = _randn(6, 10, seed=22)
    torch.testing.assert_close(loss(codebook),
                               0.5 * decorrelation_loss(codebook))
    torch.testing.assert_close(loss(codebook[..., None, None]), loss(codebook))
    with pytest.raises(ValueError):
        loss(codebook[0])
