"""EDAM's layers (Wu et al., "Embedded Discriminative Attention Mechanism for
Weakly Supervised Semantic Segmentation", CVPR 2021, §3.2-3.3, Eqs. 1-4): the
discriminative activation (DA) layer, the class-wise Transformer layer and the
collaborative multi-attention (CMA) module, checked against a reference written
from the official code (allenwu97/EDAM ``network/``, built on codertimo's
BERT-pytorch)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.models.layers import (ClassWiseTransformerLayer,
                                  CollaborativeMultiAttention,
                                  DiscriminativeActivation,
                                  sinusoidal_positions)

K, D, HEADS, FFN = 3, 16, 2, 32


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=_gen(seed)).to(dtype)


def _cma(**kw):
    cfg = dict(num_classes=K, embed_dims=D, num_heads=HEADS, ffn_channels=FFN)
    cfg.update(kw)
    torch.manual_seed(cfg.pop('seed', 0))
    return CollaborativeMultiAttention(**cfg)


def _randomize_(module, seed=1, scale=0.3):
    """Random values in every parameter (layer norms and biases included; the
    layer-norm gains around 1)."""
    g = _gen(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            offset = 1.0 if name.split('.')[-1] in ('norm1_weight',
                                                    'norm2_weight') else 0.0
            p.copy_(torch.randn(p.shape, generator=g) * scale + offset)
    return module


# =====================================================================
# reference from the official code (allenwu97/EDAM network/, BERT-pytorch)
# =====================================================================
class RefLayerNorm(nn.Module):
    """network/utils/layer_norm.py: ``a (x - mean) / (std + eps) + b``."""

    def __init__(self, features, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class RefGELU(nn.Module):
    """network/utils/gelu.py (the tanh form)."""

    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(
            math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class RefAttention(nn.Module):
    """network/attention/single.py."""

    def forward(self, query, key, value, dropout=None):
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(
            query.size(-1))
        p_attn = F.softmax(scores, dim=-1)
        if dropout is not None:
            p_attn = dropout(p_attn)
        return torch.matmul(p_attn, value), p_attn


class RefMultiHeadedAttention(nn.Module):
    """network/attention/multi_head.py."""

    def __init__(self, h, d_model, dropout=0.1):
        super().__init__()
        assert d_model % h == 0
        self.d_k = d_model // h
        self.h = h
        self.linear_layers = nn.ModuleList(
            [nn.Linear(d_model, d_model) for _ in range(3)])
        self.output_linear = nn.Linear(d_model, d_model)
        self.attention = RefAttention()
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, query, key, value):
        batch_size = query.size(0)
        query, key, value = [
            lin(x).view(batch_size, -1, self.h, self.d_k).transpose(1, 2)
            for lin, x in zip(self.linear_layers, (query, key, value))
        ]
        x, _ = self.attention(query, key, value, dropout=self.dropout)
        x = x.transpose(1, 2).contiguous().view(batch_size, -1,
                                                self.h * self.d_k)
        return self.output_linear(x)


class RefPositionwiseFeedForward(nn.Module):
    """network/utils/feed_forward.py."""

    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = RefGELU()

    def forward(self, x):
        return self.w_2(self.dropout(self.activation(self.w_1(x))))


class RefSublayerConnection(nn.Module):
    """network/utils/sublayer.py (pre-LN residual)."""

    def __init__(self, size, dropout, norm):
        super().__init__()
        self.norm = RefLayerNorm(size) if norm == 'bert' else nn.LayerNorm(
            size, eps=1e-6)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))


class RefTransformerBlock(nn.Module):
    """network/transformer.py."""

    def __init__(self, hidden, attn_heads, feed_forward_hidden, dropout,
                 norm='bert'):
        super().__init__()
        self.attention = RefMultiHeadedAttention(h=attn_heads, d_model=hidden)
        self.feed_forward = RefPositionwiseFeedForward(
            d_model=hidden, d_ff=feed_forward_hidden, dropout=dropout)
        self.input_sublayer = RefSublayerConnection(hidden, dropout, norm)
        self.output_sublayer = RefSublayerConnection(hidden, dropout, norm)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = self.input_sublayer(
            x, lambda _x: self.attention.forward(_x, _x, _x))
        x = self.output_sublayer(x, self.feed_forward)
        return self.dropout(x)


class RefEDAMCMA(nn.Module):
    """The CMA part of network/resnet38_EDAM_cls.py ``Net.forward`` (after
    ``X^k = d_d(x) * mask[k]``), with BERTEmbedding (network/embedding/*.py),
    one TransformerBlock list per class and ``fc_list`` of bias-free 1x1
    convolutions; applied to each group of ``mini_batch_size`` images."""

    def __init__(self, num_classes, hidden, heads, ffn, n_layers=1,
                 norm='bert', dropout=0.1):
        super().__init__()
        self.sample_num = num_classes
        self.hidden = hidden
        self.segment = nn.Embedding(5, hidden)  # SegmentEmbedding
        self.emb_dropout = nn.Dropout(dropout)
        self.trans_list = nn.ModuleList([
            nn.ModuleList([
                RefTransformerBlock(hidden, heads, ffn, dropout, norm)
                for _ in range(n_layers)
            ]) for _ in range(num_classes)
        ])
        self.fc_list = nn.ModuleList([
            nn.Conv2d(hidden, 1, 1, bias=False) for _ in range(num_classes)
        ])

    @staticmethod
    def positional(max_len, d_model):
        """network/embedding/position.py (built for the actual h w)."""
        pe = torch.zeros(max_len, d_model).float()
        position = torch.arange(0, max_len).float().unsqueeze(1)
        div_term = (torch.arange(0, d_model, 2).float() *
                    -(math.log(10000.0) / d_model)).exp()
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        return pe.unsqueeze(0)

    def forward_group(self, feats):
        """(n, sample_num, hidden, h, w) maps of one group -> (n, sample_num)
        logits."""
        n, _, _, h, w = feats.shape
        mb, sn = n, self.sample_num
        x = feats.permute(0, 1, 3, 4, 2).contiguous()
        x = x.view(1, mb * sn * h * w, self.hidden)
        segment_info = torch.zeros(1, mb * sn * h * w)
        for i in range(mb):
            segment_info[:, i * sn * h * w:(i + 1) * sn * h * w] = i
        segment_info = segment_info.to(torch.int64)
        pe = self.positional(h * w, self.hidden).to(x.dtype)
        pos = torch.stack([pe for _ in range(mb * sn)], 0).view(
            1, -1, self.hidden)
        x = self.emb_dropout(x + pos + self.segment(segment_info))
        output = []
        for i in range(sn):
            trans_input = []
            for j in range(mb):
                trans_input.append(x[:, i * h * w + j * sn * h * w:(i + 1) *
                                     h * w + j * sn * h * w, :])
            trans_input = torch.stack(trans_input, dim=1).view(
                1, -1, self.hidden)
            for block in self.trans_list[i]:
                trans_input = block.forward(trans_input)
            trans_output = trans_input.view(mb, h, w, self.hidden).permute(
                0, 3, 1, 2)
            trans_output = F.adaptive_avg_pool2d(trans_output, 1)
            output.append(self.fc_list[i](trans_output).view(-1))
        return torch.stack(output, dim=1)

    def forward(self, feats, group_size):
        return torch.cat([
            self.forward_group(g) for g in feats.split(group_size, dim=0)
        ], 0)


def _load_reference(ref, cma):
    """Copy the stacked weights of ``cma`` into the official structure."""
    d = cma.embed_dims
    with torch.no_grad():
        ref.segment.weight.copy_(cma.segment_embed.weight)
        for k in range(cma.num_classes):
            for layer, block in zip(cma.layers, ref.trans_list[k]):
                att = block.attention
                for s, lin in enumerate(att.linear_layers):  # q, k, v
                    lin.weight.copy_(
                        layer.qkv_weight[k, :, s * d:(s + 1) * d].t())
                    lin.bias.copy_(layer.qkv_bias[k, s * d:(s + 1) * d])
                att.output_linear.weight.copy_(layer.proj_weight[k].t())
                att.output_linear.bias.copy_(layer.proj_bias[k])
                ffn = block.feed_forward
                ffn.w_1.weight.copy_(layer.fc1_weight[k].t())
                ffn.w_1.bias.copy_(layer.fc1_bias[k])
                ffn.w_2.weight.copy_(layer.fc2_weight[k].t())
                ffn.w_2.bias.copy_(layer.fc2_bias[k])
                for sub, w, b in ((block.input_sublayer, layer.norm1_weight,
                                   layer.norm1_bias),
                                  (block.output_sublayer, layer.norm2_weight,
                                   layer.norm2_bias)):
                    norm_w, norm_b = (
                        (sub.norm.a_2, sub.norm.b_2) if isinstance(
                            sub.norm, RefLayerNorm) else
                        (sub.norm.weight, sub.norm.bias))
                    norm_w.copy_(w[k])
                    norm_b.copy_(b[k])
            ref.fc_list[k].weight.copy_(
                cma.classifier.weight[k].reshape(1, d, 1, 1))


# =====================================================================
# DA layer (Eq. 1)
# =====================================================================
def _da(**kw):
    torch.manual_seed(0)
    return DiscriminativeActivation(8, K, **kw)


def test_da_unit_l2_norm_nonnegative_k_plus_1():
    da = _da()
    feats = _randn(2, 8, 5, 6)
    m = da(feats)
    assert m.shape == (2, K + 1, 5, 6)
    assert (m >= 0).all()
    assert torch.allclose(m.norm(dim=1), torch.ones(2, 5, 6), atol=1e-5)
    # |normalize(M)| == |M| / ||M||: no softmax / sigmoid
    raw = da.conv(feats)
    assert torch.allclose(m, raw.abs() / raw.norm(dim=1, keepdim=True),
                          atol=1e-6)
    # zero features: no NaN (the norm's eps)
    z = da(torch.zeros(1, 8, 3, 3))
    assert torch.isfinite(z).all() and z.abs().sum() == 0


def test_da_without_normalize_is_abs_conv():
    da = _da(normalize=False)
    feats = _randn(2, 8, 4, 4)
    m = da(feats)
    assert torch.equal(m, da.conv(feats).abs())
    assert not torch.allclose(m.norm(dim=1), torch.ones(2, 4, 4), atol=1e-3)


def test_da_invariant_to_weight_scale_and_channel_sign():
    da = _da()
    feats = _randn(2, 8, 5, 5, seed=3)
    ref = da(feats)
    with torch.no_grad():
        da.conv.weight.mul_(3.7)
    assert torch.allclose(da(feats), ref, atol=1e-6)
    for c in (0, 2, K):
        with torch.no_grad():
            da.conv.weight[c].neg_()
        assert torch.allclose(da(feats), ref, atol=1e-6)
    # but not to a change of one channel's magnitude (the norm couples them)
    with torch.no_grad():
        da.conv.weight[1].mul_(2.0)
    assert not torch.allclose(da(feats), ref, atol=1e-3)


@pytest.mark.parametrize('background_index', [0, -1])
def test_da_background_gets_gradient_only_through_the_norm(background_index):
    feats = _randn(2, 8, 4, 4, seed=5)
    bg = 0 if background_index == 0 else K
    for normalize in (True, False):
        da = _da(background_index=background_index, normalize=normalize)
        m = da(feats)
        (da.foreground(m) * _randn(2, K, 4, 4, seed=6)).sum().backward()
        grad = da.conv.weight.grad
        fg = [c for c in range(K + 1) if c != bg]
        assert grad[fg].abs().sum() > 0
        if normalize:
            assert grad[bg].abs().sum() > 1e-6
        else:
            assert torch.equal(grad[bg], torch.zeros_like(grad[bg]))


@pytest.mark.parametrize('background_index,bg,fg', [(0, [0], [1, 2, 3]),
                                                    (-1, [3], [0, 1, 2])])
def test_da_foreground_background_channels(background_index, bg, fg):
    da = _da(background_index=background_index)
    masks = torch.arange(K + 1.).view(1, K + 1, 1, 1).expand(2, K + 1, 3, 3)
    assert da.foreground(masks).shape == (2, K, 3, 3)
    assert da.background(masks).shape == (2, 1, 3, 3)
    assert da.foreground(masks)[0, :, 0, 0].tolist() == fg
    assert da.background(masks)[0, :, 0, 0].tolist() == bg


def test_da_bad_arguments():
    with pytest.raises(ValueError, match='background_index'):
        DiscriminativeActivation(8, K, background_index=1)
    with pytest.raises(ValueError, match='odd'):
        DiscriminativeActivation(8, K, kernel_size=2)
    da = DiscriminativeActivation(8, K)
    assert da.conv.bias is None and da.conv.kernel_size == (3, 3)
    assert da.conv.padding == (1, 1)


# =====================================================================
# sinusoidal positions
# =====================================================================
def test_sinusoidal_positions_formula():
    pe = sinusoidal_positions(50, D)
    assert pe.shape == (50, D) and pe.dtype == torch.float32
    assert torch.equal(pe[0, 0::2], torch.zeros(D // 2))
    assert torch.equal(pe[0, 1::2], torch.ones(D // 2))
    p = 37
    for i in range(D // 2):
        w = 10000.0**(-2 * i / D)
        assert pe[p, 2 * i].item() == pytest.approx(math.sin(p * w), abs=1e-5)
        assert pe[p, 2 * i + 1].item() == pytest.approx(
            math.cos(p * w), abs=1e-5)
    # the official 46 x 46 buffer's first rows for a shorter sequence
    full = RefEDAMCMA.positional(46 * 46, D)[0]
    assert torch.allclose(sinusoidal_positions(35, D), full[:35], atol=1e-6)
    assert sinusoidal_positions(4, D, dtype=torch.float64).dtype == \
        torch.float64
    with pytest.raises(ValueError, match='even'):
        sinusoidal_positions(4, 5)


# =====================================================================
# class-wise Transformer layer
# =====================================================================
def test_class_wise_layer_init_and_errors():
    torch.manual_seed(0)
    layer = ClassWiseTransformerLayer(K, D, HEADS, FFN)
    # Q, K, V are three d x d Linear layers: each slice Xavier on its own
    b_qkv = math.sqrt(6 / (2 * D))
    for s in range(3):
        w = layer.qkv_weight[:, :, s * D:(s + 1) * D]
        assert 0.9 * b_qkv < w.abs().max() <= b_qkv
    b_fc = math.sqrt(6 / (D + FFN))
    assert 0.9 * b_fc < layer.fc1_weight.abs().max() <= b_fc
    assert layer.fc2_bias.abs().max() <= 1 / math.sqrt(FFN)
    assert torch.equal(layer.norm1_weight, torch.ones(K, D))
    assert torch.equal(layer.norm2_bias, torch.zeros(K, D))
    with pytest.raises(ValueError, match='divisible'):
        ClassWiseTransformerLayer(K, 15, 2)
    with pytest.raises(ValueError, match='layer_norm'):
        ClassWiseTransformerLayer(K, D, layer_norm='rms')
    with pytest.raises(ValueError, match='tokens'):
        layer(torch.zeros(1, K + 1, 4, D))


def test_class_wise_layer_blocks_are_independent():
    """Block k only sees class k's tokens: changing class 0's tokens leaves the
    other classes' outputs unchanged."""
    torch.manual_seed(0)
    layer = _randomize_(ClassWiseTransformerLayer(K, D, HEADS, FFN)).eval()
    x = _randn(2, K, 6, D)
    y = layer(x)
    x2 = x.clone()
    x2[:, 0] += 1.0
    y2 = layer(x2)
    assert torch.equal(y[:, 1:], y2[:, 1:])
    assert not torch.allclose(y[:, 0], y2[:, 0])


# =====================================================================
# CMA: equivalence with the official structure (the main check)
# =====================================================================
@pytest.mark.parametrize('layer_norm,group_size,num_layers',
                         [('bert', 2, 1), ('bert', 1, 1), ('torch', 2, 1),
                          ('bert', 2, 2)])
def test_cma_matches_official_structure(layer_norm, group_size, num_layers):
    dt = torch.float64
    cma = _cma(layer_norm=layer_norm, num_layers=num_layers).to(dt)
    _randomize_(cma, seed=11)
    ref = RefEDAMCMA(K, D, HEADS, FFN, n_layers=num_layers,
                     norm=layer_norm).to(dt)
    _load_reference(ref, cma)
    cma.eval()
    ref.eval()
    x = _randn(4, K, D, 3, 4, seed=12, dtype=dt)
    out = cma(x, group_size)
    exp = ref(x, group_size)
    assert out.shape == (4, K)
    assert torch.allclose(out, exp, atol=1e-10, rtol=1e-9), \
        (out - exp).abs().max()
    # the reference is sensitive to the layout: a Q / K swap changes it
    with torch.no_grad():
        lin = ref.trans_list[1][0].attention.linear_layers
        wq = lin[0].weight.clone()
        lin[0].weight.copy_(lin[1].weight)
        lin[1].weight.copy_(wq)
    assert not torch.allclose(ref(x, group_size)[:, 1], exp[:, 1], atol=1e-6)


def test_cma_matches_official_structure_in_train_mode_without_dropout():
    cma = _cma(dropout=0.0).double()
    _randomize_(cma, seed=21)
    ref = RefEDAMCMA(K, D, HEADS, FFN, dropout=0.0).double()
    # the official MultiHeadedAttention keeps its default attention dropout
    # (0.1) whatever the block's rate; the layer uses its one ``dropout`` there
    for blocks in ref.trans_list:
        for block in blocks:
            block.attention.dropout.p = 0.0
    _load_reference(ref, cma)
    x = _randn(2, K, D, 2, 3, seed=22, dtype=torch.float64)
    assert torch.allclose(cma.train()(x, 2), ref.train()(x, 2), atol=1e-10)


def test_cma_dropout_active_in_training():
    cma = _cma()
    x = _randn(2, K, D, 3, 3)
    torch.manual_seed(1)
    a = cma.train()(x, 2)
    torch.manual_seed(2)
    b = cma(x, 2)
    assert not torch.allclose(a, b)
    cma.eval()
    assert torch.equal(cma(x, 2), cma(x, 2))


def test_cma_da_only_ablation():
    """num_layers=0: y_n^k = w_k^T GAP(X_n^k), no embeddings or attention."""
    cma = _cma(num_layers=0)
    assert not hasattr(cma, 'segment_embed') and not hasattr(cma, 'layers')
    x = _randn(6, K, D, 3, 2)
    exp = torch.einsum('nkd,kd->nk', x.mean((3, 4)),
                       cma.classifier.weight[:, :, 0])
    for b in (1, 2, 3, 6):  # no segment rows needed
        assert torch.allclose(cma(x, b), exp, atol=1e-6)


def test_cma_classifier_init():
    cma = _cma()
    assert cma.classifier.bias is None
    assert cma.classifier.weight.shape == (K, D, 1)
    bound = math.sqrt(6 / (D + 1))
    assert cma.classifier.weight.abs().max() <= bound
    assert cma.segment_embed.weight.shape == (5, D)


# =====================================================================
# CMA: grouping layout (groups of consecutive images, §3.3)
# =====================================================================
def test_cma_group_independence_and_group_permutation():
    cma = _randomize_(_cma(), seed=31).eval()
    x = _randn(6, K, D, 3, 3, seed=32)  # 3 groups of 2
    y = cma(x, 2)
    assert y.shape == (6, K)
    x2 = x.clone()
    x2[2:4] = _randn(2, K, D, 3, 3, seed=33)
    y2 = cma(x2, 2)
    assert torch.allclose(y2[:2], y[:2], atol=1e-6)
    assert torch.allclose(y2[4:], y[4:], atol=1e-6)
    assert not torch.allclose(y2[2:4], y[2:4], atol=1e-4)
    perm = torch.tensor([4, 5, 0, 1, 2, 3])  # whole groups
    assert torch.allclose(cma(x[perm], 2), y[perm], atol=1e-5)


def test_cma_within_group_equivariance_needs_equal_segment_rows():
    cma = _randomize_(_cma(), seed=41).eval()
    x = _randn(2, K, D, 3, 3, seed=42)
    swap = torch.tensor([1, 0])
    # distinct segment rows: the image's place in the group matters
    assert not torch.allclose(cma(x[swap], 2), cma(x, 2)[swap], atol=1e-4)
    with torch.no_grad():
        cma.segment_embed.weight.copy_(cma.segment_embed.weight[:1].expand(
            5, D))
    assert torch.allclose(cma(x[swap], 2), cma(x, 2)[swap], atol=1e-5)


def test_cma_inter_image_interaction_only_within_groups():
    cma = _randomize_(_cma(), seed=51).eval()
    x = _randn(2, K, D, 3, 3, seed=52)
    x2 = x.clone()
    x2[1] = _randn(K, D, 3, 3, seed=53)
    # B = 2: image 1 attends to image 2
    assert not torch.allclose(cma(x, 2)[0], cma(x2, 2)[0], atol=1e-4)
    # B = 1: it cannot
    assert torch.allclose(cma(x, 1)[0], cma(x2, 1)[0], atol=1e-6)
    # a group of 1 is the image alone
    assert torch.allclose(cma(x, 1)[:1], cma(x[:1], 1), atol=1e-6)


def test_cma_spatial_permutation_invariance_without_positions():
    cma = _randomize_(_cma(positional_encoding=False), seed=61).eval()
    with torch.no_grad():
        cma.segment_embed.weight.copy_(cma.segment_embed.weight[:1].expand(
            5, D))
    x = _randn(2, K, D, 3, 4, seed=62)
    g = _gen(63)
    xp = torch.stack([
        x[i].flatten(2)[:, :, torch.randperm(12, generator=g)].view(
            K, D, 3, 4) for i in range(2)
    ])
    assert torch.allclose(cma(xp, 2), cma(x, 2), atol=1e-5)
    # with the positional encoding the token order matters
    cma_pe = _randomize_(_cma(), seed=61).eval()
    with torch.no_grad():
        cma_pe.segment_embed.weight.copy_(
            cma_pe.segment_embed.weight[:1].expand(5, D))
    assert not torch.allclose(cma_pe(xp, 2), cma_pe(x, 2), atol=1e-4)


def test_cma_group_errors():
    cma = _cma(num_segments=3)
    x = torch.zeros(3, K, D, 2, 2)
    both = r'(?s)(?=.*group_size)(?=.*batch size)'
    with pytest.raises(ValueError, match=both):
        cma(x, 2)
    with pytest.raises(ValueError, match='num_segments'):
        cma(torch.zeros(4, K, D, 2, 2), 4)
    with pytest.raises(ValueError, match='group'):
        cma(x, 0)
    with pytest.raises(ValueError, match='expected'):
        cma(torch.zeros(2, K, D + 2, 2, 2), 2)
    assert cma(x, 3).shape == (3, K)  # 3 == num_segments is fine
