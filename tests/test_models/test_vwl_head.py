"""VWL's head (Ru et al., "Weakly supervised semantic segmentation by visual words
learning and hybrid pooling", IJCV 2023; docs/methods/vwl.md) and the head options
it rests on: CAMHead's ``pooling`` of the features before the class conv, the
losses of VWL-L (Eq. 15) and VWL-M (Eq. 12), which loss reaches which parameter,
the word labels, the memory bank (made labels from the bank before the step's
update, Eqs. 6-7, part of the state) and CAM inference with a flip pair fused by
max. Every expected value is computed here by hand from the head's tensors."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub

from mmwsss.models.heads import CAMHead, GAINHead, VWLHead
from mmwsss.models.layers import HybridPooling
from mmwsss.models.losses import decorrelation_loss
from mmwsss.structures import WSSSDataSample

K = 3  # classes
WORDS = 16


def _register():
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def _sample(label, shape=(8, 8)):
    ds = WSSSDataSample(metainfo=dict(img_id='x', img_shape=shape,
                                      ori_shape=shape))
    ds.gt_label = torch.tensor(label, dtype=torch.float32)
    return ds


LABELS = [[1, 0, 1], [0, 1, 0], [1, 1, 0]]


def _samples(n=2, shape=(8, 8)):
    return [_sample(LABELS[i % len(LABELS)], shape) for i in range(n)]


def _feats(n=2, c=6, h=8, w=8, seed=0, relu=True):
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    return x.relu() if relu else x


def _hp_by_hand(x, gamma=2.0):
    """Eq. 10 for R = {1, 2, 4} on maps whose sides are multiples of 4: the
    maxima of the r x r blocks, averaged, plus gamma GAP, over gamma + 3."""
    n, c, h, w = x.shape
    total = gamma * x.mean(dim=(2, 3))
    for r in (1, 2, 4):
        blocks = x.reshape(n, c, r, h // r, r, w // r)
        total = total + blocks.amax(dim=(3, 5)).mean(dim=(2, 3))
    return total / (gamma + 3)


def _mlsm(logits, labels):
    """The multi-label soft margin loss written out."""
    return -(labels * F.logsigmoid(logits) +
             (1 - labels) * F.logsigmoid(-logits)).mean()


def _vwl(codebook='learned', seed=0, c=6, **kw):
    _register()
    torch.manual_seed(seed)
    if codebook == 'learned':
        codebook = dict(type='LearnedCodebook', num_words=WORDS)
    elif codebook == 'bank':
        codebook = dict(type='MemoryBankCodebook', num_words=WORDS, rho=0.5)
    return VWLHead(in_channels=c, num_classes=K, codebook=codebook, **kw)


# ------------------------------------------------------- CAMHead pooling option
def test_cam_head_hybrid_pooling_pools_the_features():
    _register()
    torch.manual_seed(0)
    head = CAMHead(in_channels=6, num_classes=K,
                   pooling=dict(type='HybridPooling'))
    assert isinstance(head.pooling, HybridPooling)
    assert head.classifier.bias is not None  # classifier_bias default True
    with torch.no_grad():
        head.classifier.bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
    x = _feats(seed=1, relu=False)
    out = head(x)
    assert set(out) == {'score_map', 'logits'}
    w = head.classifier.weight.flatten(1)
    b = head.classifier.bias
    # logits = W HP(x) + b, by hand
    ref = _hp_by_hand(x) @ w.t() + b
    torch.testing.assert_close(out['logits'], ref)
    assert torch.equal(head.image_logits(out), out['logits'])
    # not HP of the score map (the max terms do not commute with W)
    score = torch.einsum('nchw,kc->nkhw', x, w) + b[None, :, None, None]
    torch.testing.assert_close(out['score_map'], score)
    hp_of_scores = _hp_by_hand(score)
    assert (hp_of_scores - out['logits']).abs().max() > 1e-2
    # class maps stay ReLU(W x + b)
    torch.testing.assert_close(head.class_maps(out), score.relu())
    maps, logits = head.predict_maps(x)
    torch.testing.assert_close(maps, score.relu())
    torch.testing.assert_close(logits, ref)
    # the loss is on the pooled logits
    losses, outputs = head.loss(x, _samples())
    labels = torch.tensor(LABELS[:2], dtype=torch.float32)
    torch.testing.assert_close(losses['loss_cls'], _mlsm(ref, labels))
    # no GAP + 1x1 form: no closed-form Grad-CAM
    assert head.linear_classifier() is None
    plain = CAMHead(in_channels=6, num_classes=K)
    assert plain.linear_classifier() is plain.classifier
    assert isinstance(plain(x), torch.Tensor)


def test_cam_head_without_bias_and_gap_equivalence():
    """classifier_bias=False has no bias; with gamma -> inf HP is GAP, whose
    logits equal GAP of the score map (linearity)."""
    _register()
    head = CAMHead(in_channels=6, num_classes=K, classifier_bias=False,
                   pooling=dict(type='HybridPooling', gamma=1e9))
    assert head.classifier.bias is None
    x = _feats(seed=2, relu=False)
    out = head(x)
    torch.testing.assert_close(out['logits'], out['score_map'].mean((2, 3)),
                               rtol=1e-5, atol=1e-6)


def test_gain_head_takes_a_pooling_cam_head():
    """GAINHead over CAMHead(pooling=...): Grad-CAM by autograd (no closed form),
    the inner head's dict outputs through class_maps / image_logits, the
    logits the HP ones, a GAIN training step runs."""
    _register()
    MessageHub.get_instance('test_vwl_head_gain')
    torch.manual_seed(0)
    gain = GAINHead(cls_head=dict(type='CAMHead', in_channels=6,
                                  num_classes=K,
                                  pooling=dict(type='HybridPooling')))
    assert gain.attention == 'autograd' and gain.cam_requires_grad
    inner = gain.cls_head
    x = _feats(seed=3, relu=False)
    out = gain(x)
    ref = _hp_by_hand(x) @ inner.classifier.weight.flatten(1).t() + \
        inner.classifier.bias
    torch.testing.assert_close(gain.image_logits(out), ref)
    torch.testing.assert_close(gain.image_logits(dict(cls=out)), ref)
    maps, logits = gain.predict_maps(x.clone().requires_grad_())
    assert maps.shape == (2, K, 8, 8) and (maps >= 0).all()
    torch.testing.assert_close(logits, ref)
    # Grad-CAM of class c: ReLU(sum_k w_k f_k), w = GAP(d s_c / d f)
    f = x.clone().requires_grad_()
    s = inner.image_logits(inner.outputs_from_pre_logits(f))
    (g, ) = torch.autograd.grad(s[1, 2], f)
    wk = g[1].mean((1, 2))
    torch.testing.assert_close(maps[1, 2],
                               (wk[:, None, None] * x[1]).sum(0).relu(),
                               rtol=1e-4, atol=1e-6)

    def identity(t, bn_eval=False, detach_weights=False):
        return t  # features = inputs (6 channels, stride 1)

    losses, outputs = gain.loss(x.clone(), _samples(), inputs=x.clone(),
                                extract_feat=identity)
    assert {'loss_cls', 'loss_am'} <= set(losses)
    labels = torch.tensor(LABELS[:2], dtype=torch.float32)
    torch.testing.assert_close(losses['loss_cls'], _mlsm(ref, labels))
    assert torch.isfinite(losses['loss_am'])
    assert gain.class_maps(outputs).shape == (2, K, 8, 8)


# ------------------------------------------------------------- VWLHead losses
def _hand_words(x, codebook, tau=1.0):
    """Eqs. 2-5 by hand: (word labels (N, W), assignments (N, h, w), mean
    soft frequency (N, W))."""
    n, c, h, w = x.shape
    fx = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
    fx = fx / fx.norm(dim=2, keepdim=True).clamp(min=1e-12)
    cb = codebook / codebook.norm(dim=1, keepdim=True).clamp(min=1e-12)
    sim = fx @ cb.t()  # (N, hw, W)
    assign = sim.argmax(dim=2)
    labels = torch.zeros(n, codebook.shape[0])
    for i in range(n):
        for j in set(assign[i].tolist()):
            labels[i, j] = 1
    freq = torch.softmax(tau * sim, dim=2).mean(dim=1)
    return labels, assign.reshape(n, h, w), freq


def test_vwl_l_losses_by_hand():
    head = _vwl()
    assert head.classifier.bias is None and isinstance(head.pooling,
                                                       HybridPooling)
    x = _feats(seed=4)
    ds = _samples()
    losses, out = head.loss(x, ds)
    assert set(losses) == {'loss_cls', 'loss_word', 'loss_w2i', 'loss_decov'}
    y = torch.tensor(LABELS[:2], dtype=torch.float32)
    w_img = head.classifier.weight.flatten(1)
    torch.testing.assert_close(losses['loss_cls'],
                               _mlsm(_hp_by_hand(x) @ w_img.t(), y))
    cb = head.codebook.weight.detach()
    labels, _, freq = _hand_words(x, cb)
    assert torch.equal(out['word_labels'], labels)
    word_logits = x.mean((2, 3)) @ head.word_classifier.weight.flatten(1).t()
    torch.testing.assert_close(out['word_logits'], word_logits)
    torch.testing.assert_close(losses['loss_word'], _mlsm(word_logits, labels))
    w2i = freq @ head.w2i_classifier.weight.flatten(1).t()
    torch.testing.assert_close(out['w2i_logits'], w2i)
    torch.testing.assert_close(losses['loss_w2i'], _mlsm(w2i, y))
    torch.testing.assert_close(losses['loss_decov'], decorrelation_loss(cb))
    assert losses['loss_decov'] > 0
    # the CAM is ReLU(W_img F): neither the pooling nor the words
    torch.testing.assert_close(
        head.class_maps(out), torch.einsum('nchw,kc->nkhw', x, w_img).relu())
    extras = head.train_step_extras(out)
    assert torch.equal(extras['num_words'], labels.sum(1))
    # weights of the word and w2i losses
    weighted = _vwl(word_loss_weight=0.5, w2i_loss_weight=0.25)
    weighted.load_state_dict(head.state_dict())
    lw, _ = weighted.loss(x, ds)
    torch.testing.assert_close(lw['loss_word'], 0.5 * losses['loss_word'])
    torch.testing.assert_close(lw['loss_w2i'], 0.25 * losses['loss_w2i'])


def test_vwl_loss_keys():
    x, ds = _feats(seed=5), _samples()
    losses, out = _vwl('bank').loss(x, ds)
    assert set(losses) == {'loss_cls', 'loss_word'}  # Eq. 12
    assert 'w2i_logits' not in out
    losses, _ = _vwl(decov_loss=None).loss(x, ds)  # VWE: no DeCov
    assert set(losses) == {'loss_cls', 'loss_word', 'loss_w2i'}
    bank = _vwl('bank', decov_loss=dict(type='DecorrelationLoss'))
    assert bank.decov_loss is None and bank.w2i_classifier is None
    # the loss name is the DeCov module's
    losses, _ = _vwl(decov_loss=dict(type='DecorrelationLoss',
                                     loss_name='loss_dc')).loss(x, ds)
    assert set(losses) == {'loss_cls', 'loss_word', 'loss_w2i', 'loss_dc'}


def test_word_labels_are_the_argmax_words():
    """y_word = the set of the pixels' argmax words: with 16 words and 9
    pixels per image at most 9 are set, at least 1."""
    head = _vwl(c=5)
    x = _feats(n=3, c=5, h=3, w=3, seed=6)
    _, out = head.loss(x, _samples(3, (3, 3)))
    labels, assign, _ = _hand_words(x, head.codebook.weight.detach())
    assert torch.equal(out['word_labels'], labels)
    counts = out['word_labels'].sum(1)
    assert (counts >= 1).all() and (counts <= 9).all()
    assert (counts < WORDS).all()
    # every pixel equal to word 3 (up to scale): y_word = e_3
    cb = head.codebook.weight.detach()
    same = (2.5 * cb[3])[None, :, None, None].expand(1, 5, 3, 3).contiguous()
    _, out = head.loss(same, _samples(1, (3, 3)))
    assert torch.equal(out['word_labels'][0], F.one_hot(torch.tensor(3),
                                                        WORDS).float())


# ------------------------------------------------------------ gradient routing
class MockBackbone(nn.Module):

    def __init__(self, c=6):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)

    def forward(self, img):
        return self.conv(img).relu()


def _grads(loss, groups):
    """Per group of parameters: True if ``loss`` reaches it (a non-zero
    gradient), False if it does not (no graph or an all-zero gradient)."""
    out = {}
    for name, params in groups.items():
        gs = torch.autograd.grad(loss, params, retain_graph=True,
                                 allow_unused=True)
        out[name] = any(g is not None and g.abs().sum() > 0 for g in gs)
    return out


def _routing(head, backbone):
    img = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    losses, _ = head.loss(backbone(img), _samples())
    groups = dict(
        features=list(backbone.parameters()) +
        list(head.extra_convs.parameters()),
        W_img=[head.classifier.weight],
        W_word=[head.word_classifier.weight])
    if isinstance(head.codebook.codebook, nn.Parameter):
        groups['C'] = [head.codebook.weight]
        groups['W_w2i'] = [head.w2i_classifier.weight]
    return {k: _grads(v, groups) for k, v in losses.items()}


def test_gradient_routing_learned_codebook():
    """Gradient routing of the official code (rulixiang/vwe v2, its .detach() calls): L_cls -> features, W_img; L_word -> features, W_word
    (labels detached); L_w2i -> C, W_w2i (features detached); L_decov -> C."""
    torch.manual_seed(0)
    backbone = MockBackbone(8)
    head = _vwl(c=8, num_extra_convs=1, extra_channels=6)
    assert len(head.extra_convs) == 2
    r = _routing(head, backbone)
    f, t = False, True
    assert r == {
        'loss_cls': dict(features=t, W_img=t, W_word=f, C=f, W_w2i=f),
        'loss_word': dict(features=t, W_img=f, W_word=t, C=f, W_w2i=f),
        'loss_w2i': dict(features=f, W_img=f, W_word=f, C=t, W_w2i=t),
        'loss_decov': dict(features=f, W_img=f, W_word=f, C=t, W_w2i=f),
    }, r


def test_gradient_routing_memory_bank():
    """VWL-M: the bank is no parameter; L_word reaches the features and
    W_word, L_cls the features and W_img."""
    torch.manual_seed(0)
    backbone = MockBackbone(6)
    head = _vwl('bank')
    assert not head.codebook.codebook.requires_grad
    r = _routing(head, backbone)
    assert r == {
        'loss_cls': dict(features=True, W_img=True, W_word=False),
        'loss_word': dict(features=True, W_img=False, W_word=True),
    }, r


# ---------------------------------------------------------------- memory bank
def _bank_by_hand(bank, x, assign, rho):
    """Eqs. 6-7 with a loop over the words: rho * (mean of the raw features of
    the word's pixels, 0 without pixels) + (1 - rho) * bank."""
    n, c, h, w = x.shape
    flat = x.permute(0, 2, 3, 1).reshape(-1, c)
    a = assign.reshape(-1)
    new = torch.empty_like(bank)
    for j in range(bank.shape[0]):
        pix = flat[a == j]
        mean = pix.mean(0) if len(pix) else torch.zeros(c)
        new[j] = rho * mean + (1 - rho) * bank[j]
    return new


def test_memory_bank_labels_before_update_and_update_by_hand():
    head = _vwl('bank')
    bank = head.codebook.codebook
    for step, seed in enumerate((8, 9)):
        x = _feats(seed=seed)
        before = bank.clone()
        losses, out = head.loss(x, _samples())
        labels, assign, _ = _hand_words(x, before)
        # the step's word labels (and its word loss) are made from C_t ...
        assert torch.equal(out['word_labels'], labels), step
        torch.testing.assert_close(
            losses['loss_word'], _mlsm(out['word_logits'], labels))
        # ... which they would not be from C_{t+1} (the test can tell)
        after_labels, _, _ = _hand_words(x, bank.clone())
        assert not torch.equal(after_labels, labels), step
        # C_{t+1} = rho C' + (1 - rho) C_t
        torch.testing.assert_close(bank, _bank_by_hand(before, x, assign, 0.5))
        assert (assign.flatten().bincount(minlength=WORDS) == 0).any()


def test_memory_bank_is_state_not_parameter():
    head = _vwl('bank')
    bank = head.codebook.codebook
    assert not isinstance(bank, nn.Parameter) and not bank.requires_grad
    assert 'codebook.codebook' in head.state_dict()
    assert 'codebook.codebook' in dict(head.named_buffers())
    assert all('codebook' not in n for n, _ in head.named_parameters())
    # the toy config's optimizer: the bank is in no param group; VWL-L's
    # codebook is
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    from mmwsss.registry import MODELS
    from tests.conftest import REPO
    for name, in_opt in (('vwl_m_r18_toy.py', False),
                         ('vwl_l_r18_toy.py', True)):
        cfg = Config.fromfile(f'{REPO}/configs/toy/{name}')
        model = MODELS.build(cfg.model)
        opt = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
        in_groups = {id(p) for g in opt.param_groups for p in g['params']}
        cb = model.head.codebook.codebook
        assert (id(cb) in in_groups) is in_opt, name
        assert len(in_groups) == sum(1 for _ in model.parameters()), name
    # a training step leaves no gradient on the bank
    x = _feats(seed=10).requires_grad_()
    losses, _ = head.loss(x, _samples())
    sum(losses.values()).backward()
    assert bank.grad is None


def test_memory_bank_state_dict_round_trip():
    head = _vwl('bank')
    for seed in (11, 12, 13):
        head.loss(_feats(seed=seed), _samples())
    state = copy.deepcopy(head.state_dict())
    other = _vwl('bank', seed=1)
    assert not torch.equal(other.codebook.codebook, head.codebook.codebook)
    other.load_state_dict(state)
    assert torch.equal(other.codebook.codebook, head.codebook.codebook)
    # and both continue identically
    x = _feats(seed=14)
    _, a = head.loss(x, _samples())
    _, b = other.loss(x, _samples())
    assert torch.equal(a['word_labels'], b['word_labels'])
    assert torch.equal(other.codebook.codebook, head.codebook.codebook)


def test_sample_init_once_and_persists():
    """init='sample': the codebook is drawn from the pixel features of the
    first batch, once; the flag is a buffer, a loaded state is not redrawn."""
    cb = dict(type='MemoryBankCodebook', num_words=WORDS, rho=0.0,
              init='sample')
    head = _vwl(cb)
    assert head.codebook.needs_init
    assert 'codebook.initialized' in head.state_dict()
    x = _feats(seed=15)
    _, out = head.loss(x, _samples())
    bank = head.codebook.codebook.clone()
    assert not head.codebook.needs_init
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 6)
    for row in bank:  # every word is a pixel feature of the first batch
        assert (pixels == row).all(1).any()
    # the labels of the first step come from the sampled words
    labels, _, _ = _hand_words(x, bank)
    assert torch.equal(out['word_labels'], labels)
    head.loss(_feats(seed=16), _samples())  # rho = 0: no redraw, no move
    assert torch.equal(head.codebook.codebook, bank)
    fresh = _vwl(cb, seed=2)
    assert fresh.codebook.needs_init
    fresh.load_state_dict(head.state_dict())
    assert not fresh.codebook.needs_init
    fresh.loss(_feats(seed=17), _samples())
    assert torch.equal(fresh.codebook.codebook, bank)
    # the learned codebook too
    learned = _vwl(dict(type='LearnedCodebook', num_words=WORDS,
                        init='sample'))
    assert learned.codebook.needs_init
    learned.loss(x, _samples())
    assert not learned.codebook.needs_init
    for row in learned.codebook.weight.detach():
        assert (pixels == row).all(1).any()


# ------------------------------------------------------------------- options
def test_hist_reduce_scales_w2i_input_by_hw():
    mean = _vwl(hist_reduce='mean')
    summed = _vwl(hist_reduce='sum')
    summed.load_state_dict(mean.state_dict())
    x = _feats(seed=18, h=4, w=6)
    _, a = mean.loss(x, _samples(shape=(4, 6)))
    _, b = summed.loss(x, _samples(shape=(4, 6)))
    torch.testing.assert_close(b['w2i_logits'], 24 * a['w2i_logits'])
    _, _, freq = _hand_words(x, mean.codebook.weight.detach())
    torch.testing.assert_close(freq.sum(1), torch.ones(2))
    torch.testing.assert_close(
        a['w2i_logits'], freq @ mean.w2i_classifier.weight.flatten(1).t())


def test_tau_sharpens_the_frequency():
    x = _feats(seed=19)
    a = _vwl(tau=1.0)
    b = _vwl(tau=10.0)
    b.load_state_dict(a.state_dict())
    _, oa = a.loss(x, _samples())
    _, ob = b.loss(x, _samples())
    assert torch.equal(oa['word_labels'], ob['word_labels'])
    _, _, freq = _hand_words(x, b.codebook.weight.detach(), tau=10.0)
    torch.testing.assert_close(
        ob['w2i_logits'], freq @ b.w2i_classifier.weight.flatten(1).t())


def test_codebook_channels_mismatch_names_both():
    _register()
    # the classifier's input is the extra convs' output (16), not in_channels
    with pytest.raises(ValueError, match=r'\(8\).*\(16\)'):
        VWLHead(in_channels=8, num_classes=K, num_extra_convs=1,
                extra_channels=16,
                codebook=dict(type='LearnedCodebook', num_words=4,
                              channels=8))
    head = VWLHead(in_channels=8, num_classes=K, num_extra_convs=1,
                   extra_channels=16,
                   codebook=dict(type='MemoryBankCodebook', num_words=4))
    assert head.codebook.channels == 16
    assert head.word_classifier.in_channels == 16


def test_no_pooling_gives_gap_logits():
    head = _vwl(pooling=None)
    assert head.pooling is None
    x = _feats(seed=20)
    score = head(x)
    assert isinstance(score, torch.Tensor)
    torch.testing.assert_close(head.image_logits(score), score.mean((2, 3)))
    losses, out = head.loss(x, _samples())
    torch.testing.assert_close(out['logits'], score.mean((2, 3)))
    y = torch.tensor(LABELS[:2], dtype=torch.float32)
    torch.testing.assert_close(losses['loss_cls'],
                               _mlsm(score.mean((2, 3)), y))
    assert set(losses) == {'loss_cls', 'loss_word', 'loss_w2i', 'loss_decov'}


# -------------------------------------------------------------- CAM inference
def _classifier(**test_cfg):
    _register()
    from mmwsss.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='WSClassifier',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0],
                               std=[1, 1, 1]),
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=8,
                      base_channels=8, out_indices=(3, ),
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1)),
        head=dict(type='VWLHead', in_channels=64, num_classes=K,
                  num_extra_convs=1, extra_channels=16,
                  codebook=dict(type='MemoryBankCodebook', num_words=8)),
        test_cfg=test_cfg))
    model.init_weights()
    return model.eval()


def _manual_cams(model, x, scales, flip_fusion):
    """Per scale: ReLU of the score map of the image and of its flipped copy
    (flipped back), both resized to the input, fused by ``flip_fusion``; the
    scales summed; max-normalised (+1e-5)."""
    h, w = x.shape[-2:]
    total = 0
    with torch.no_grad():
        for s in scales:
            xs = x if s == 1.0 else F.interpolate(
                x, size=(round(h * s), round(w * s)), mode='bilinear',
                align_corners=False)
            maps = []
            for img, back in ((xs, False), (xs.flip(-1), True)):
                m = model(img, mode='tensor')['score_map'].relu()
                m = F.interpolate(m, size=(h, w), mode='bilinear',
                                  align_corners=False)
                maps.append(m.flip(-1) if back else m)
            total = total + (torch.maximum(*maps) if flip_fusion == 'max'
                             else maps[0] + maps[1])
    total = total[0]
    return total / (total.amax((1, 2), keepdim=True) + 1e-5)


def test_cam_inference_flip_max_then_scale_sum():
    scales = (1.0, 0.5)
    model = _classifier(scales=scales, flip=True, fusion='sum',
                        flip_fusion='max', restrict='none')
    assert model.test_cfg['flip_fusion'] == 'max'
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(21))
    ds = _sample([1, 1, 0], shape=(32, 40))
    out = model.predict(x, [ds])[0]
    cams = out.pred_cams.data
    ref = _manual_cams(model, x, scales, 'max')
    torch.testing.assert_close(cams, ref, rtol=1e-4, atol=1e-5)
    # the flip-sum fusion is another map (the check can tell the two apart)
    other = _manual_cams(model, x, scales, 'sum')
    assert (other - ref).abs().max() > 1e-3
    # the image scores: scale 1, no flip, the HP logits
    with torch.no_grad():
        logits = model(x, mode='tensor')['logits'][0]
    torch.testing.assert_close(out.pred_score, logits.sigmoid())
    # the toy configs ask for it
    from mmengine.config import Config

    from tests.conftest import REPO
    for name in ('vwl_l_r18_toy.py', 'vwl_m_r18_toy.py'):
        cfg = Config.fromfile(f'{REPO}/configs/toy/{name}')
        assert cfg.model.test_cfg.flip_fusion == 'max', name
        assert cfg.model.test_cfg.fusion == 'sum', name
