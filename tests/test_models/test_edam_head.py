"""EDAMHead (Wu et al., "Embedded Discriminative Attention Mechanism for Weakly
Supervised Semantic Segmentation", CVPR 2021, §3.2-3.4): the DA masks as
class maps, the CMA logits, groups, the loss, gradients, and the head inside
WSClassifier."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmwsss.models.heads import EDAMHead
from mmwsss.structures import WSSSDataSample

K, C, D = 3, 8, 16


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _head(seed=0, **kw):
    cma_cfg = dict(num_heads=2, ffn_channels=32)
    cma_cfg.update(kw.pop('cma_cfg', {}))
    cfg = dict(in_channels=C, num_classes=K, embed_dims=D, group_size=2,
               cma_cfg=cma_cfg)
    cfg.update(kw)
    torch.manual_seed(seed)
    return EDAMHead(**cfg)


def _labels(rows):
    return torch.tensor(rows, dtype=torch.float32)


def _sample(label, ori=(32, 32)):
    ds = WSSSDataSample(metainfo=dict(img_id='x', ori_shape=ori,
                                      img_shape=ori))
    ds.gt_label = torch.tensor(label, dtype=torch.float32)
    return ds


def _randomize_cma_(head, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.cma.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


# =====================================================================
# Eq. 2 + reduction
# =====================================================================
def test_reduction_commutes_with_masking():
    head = _head()
    feats = _randn(2, C, 4, 5)
    masks = head.da(feats)
    x = head.class_features(feats, masks)
    assert x.shape == (2, K, D, 4, 5)
    assert head.reduce.bias is None
    fg = head.da.foreground(masks)
    for k in range(K):
        exp = F.conv2d(feats * fg[:, k:k + 1], head.reduce.weight)  # W_r(F m)
        assert torch.allclose(x[:, k], exp, atol=1e-5)
    # the foreground masks, not the background one, are applied
    assert not torch.allclose(
        x[:, 0], F.conv2d(feats * masks[:, :1], head.reduce.weight),
        atol=1e-4)


# =====================================================================
# forward / groups / predict_maps
# =====================================================================
def test_forward_outputs_and_groups():
    head = _head(cma_cfg=dict(dropout=0.0))
    feats = _randn(4, C, 3, 3)
    head.train()
    out = head(feats)
    assert set(out) == {'masks', 'logits'}
    assert out['masks'].shape == (4, K + 1, 3, 3)
    assert out['logits'].shape == (4, K)
    x = head.class_features(feats, out['masks'])
    # training: groups of group_size (2) consecutive images
    assert torch.allclose(out['logits'], head.cma(x, 2), atol=1e-6)
    assert not torch.allclose(out['logits'], head.cma(x, 1), atol=1e-4)
    assert torch.allclose(head(feats, group_size=4)['logits'], head.cma(x, 4),
                          atol=1e-6)
    # eval: every image is its own group
    head.eval()
    assert torch.allclose(head(feats)['logits'], head.cma(x, 1), atol=1e-6)
    assert head.class_maps(out) is not None
    assert torch.equal(head.image_logits(out), out['logits'])
    # a batch that is not a multiple of the group size is refused in training
    head.train()
    with pytest.raises(ValueError, match='group_size'):
        head(_randn(3, C, 3, 3))
    with pytest.raises(ValueError, match='group_size'):
        _head(group_size=0)


@pytest.mark.parametrize('background_index', [0, -1])
def test_class_maps_and_extras_are_the_da_masks(background_index):
    head = _head(da_cfg=dict(background_index=background_index)).eval()
    feats = _randn(2, C, 4, 4, seed=1)
    out = head(feats)
    m = head.da(feats)
    bg = 0 if background_index == 0 else K
    fg = [c for c in range(K + 1) if c != bg]
    assert torch.equal(head.class_maps(out), m[:, fg])
    extras = head.train_step_extras(out)
    assert set(extras) == {'da_background'}
    assert torch.equal(extras['da_background'], m[:, bg:bg + 1])


def test_predict_maps_are_the_foreground_da_masks_and_ignore_the_cma():
    head = _head().eval()
    feats = _randn(2, C, 5, 4, seed=2)
    maps, logits = head.predict_maps(feats)
    assert torch.equal(maps, head.da.foreground(head.da(feats)))
    assert logits.shape == (2, K)
    # single-image CMA logits: image 0's score does not see image 1
    feats2 = feats.clone()
    feats2[1] = _randn(C, 5, 4, seed=3)
    maps2, logits2 = head.predict_maps(feats2)
    assert torch.allclose(logits2[0], logits[0], atol=1e-6)
    assert torch.equal(maps2[0], maps[0])
    # the maps do not depend on the CMA (nor on the reduction)
    _randomize_cma_(head, seed=4)
    with torch.no_grad():
        head.reduce.weight.normal_()
    maps3, logits3 = head.predict_maps(feats)
    assert torch.equal(maps3, maps)
    assert not torch.allclose(logits3, logits, atol=1e-4)
    # predict_maps is the eval computation even from training mode
    head.train()
    maps4, _ = head.predict_maps(feats[:1])  # a batch of 1 with group_size 2
    assert torch.allclose(maps4, maps[:1], atol=1e-6)


@pytest.mark.parametrize('hw', [(40, 40), (5, 7)])
def test_any_feature_size(hw):
    """The positional encoding is made for the actual h w (not 46 x 46)."""
    head = _head().eval()
    with torch.no_grad():
        out = head(_randn(1, C, *hw, seed=5))
    assert out['masks'].shape == (1, K + 1, *hw)
    assert out['logits'].shape == (1, K) and torch.isfinite(
        out['logits']).all()


# =====================================================================
# loss (Eq. 3) and gradients
# =====================================================================
def test_loss_is_mean_bce_and_ln2_at_zero_logits():
    head = _head(cma_cfg=dict(dropout=0.0)).train()
    feats = _randn(4, C, 3, 3, seed=6)
    labels = _labels([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]])
    samples = [_sample(lab.tolist()) for lab in labels]
    losses, out = head.loss(feats, samples)
    assert set(losses) == {'loss_cls'}
    exp = F.binary_cross_entropy_with_logits(out['logits'], labels)
    assert torch.allclose(losses['loss_cls'], exp, atol=1e-6)
    assert torch.allclose(
        losses['loss_cls'],
        F.binary_cross_entropy_with_logits(head(feats)['logits'], labels),
        atol=1e-6)
    with torch.no_grad():
        head.cma.classifier.weight.zero_()
    losses, out = head.loss(feats, samples)
    assert torch.equal(out['logits'], torch.zeros(4, K))
    assert losses['loss_cls'].item() == pytest.approx(math.log(2), abs=1e-6)
    assert losses['loss_cls'].item() == pytest.approx(0.693147, abs=1e-6)
    # loss_weight scales it
    head2 = _head(cma_cfg=dict(dropout=0.0), loss_weight=0.5).train()
    with torch.no_grad():
        head2.cma.classifier.weight.zero_()
    assert head2.loss(feats, samples)[0]['loss_cls'].item() == pytest.approx(
        0.5 * math.log(2), abs=1e-6)


def test_one_sgd_step_reduces_the_loss():
    head = _head(cma_cfg=dict(dropout=0.0)).train()
    feats = _randn(4, C, 3, 3, seed=7)
    samples = [
        _sample(r) for r in ([1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 1, 1])
    ]
    opt = torch.optim.SGD(head.parameters(), lr=0.05)
    before = head.loss(feats, samples)[0]['loss_cls']
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = head.loss(feats, samples)[0]['loss_cls']
    assert after < before - 1e-4


@pytest.mark.parametrize('k', [0, 2])
def test_class_separation(k):
    """A loss on class k only reaches class k's Transformer slice and
    classifier row, and the shared reduction / DA conv / segment rows."""
    head = _head(cma_cfg=dict(dropout=0.0)).train()
    feats = _randn(4, C, 3, 3, seed=8).requires_grad_()
    logits = head(feats)['logits']
    F.binary_cross_entropy_with_logits(
        logits[:, k], torch.tensor([1., 0., 1., 0.])).backward()
    others = [j for j in range(K) if j != k]
    for layer in head.cma.layers:
        for name, p in layer.named_parameters():
            assert p.shape[0] == K, name
            assert p.grad[others].abs().sum() == 0, name
            assert p.grad[k].abs().sum() > 0, name
    w = head.cma.classifier.weight.grad
    assert w[others].abs().sum() == 0 and w[k].abs().sum() > 0
    assert head.reduce.weight.grad.abs().sum() > 0
    assert head.da.conv.weight.grad.abs().sum() > 0
    assert head.cma.segment_embed.weight.grad[:2].abs().sum() > 0
    assert feats.grad.abs().sum() > 0  # reaches the backbone


def test_every_parameter_gets_a_gradient():
    """All K classes are processed for every group, present or absent: one
    training step reaches every parameter (DDP without
    find_unused_parameters), each class slice included."""
    head = _head().train()  # dropout 0.1 on
    feats = _randn(4, C, 3, 3, seed=9)
    samples = [_sample(r) for r in ([1, 0, 0], [1, 0, 0], [0, 1, 0],
                                    [1, 1, 0])]  # class 2 absent
    torch.manual_seed(0)
    head.loss(feats, samples)[0]['loss_cls'].backward()
    for name, p in head.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    for layer in head.cma.layers:
        for name, p in layer.named_parameters():
            for j in range(K):
                assert p.grad[j].abs().sum() > 0, (name, j)
    assert (head.cma.classifier.weight.grad.abs().sum((1, 2)) > 0).all()
    # the background mask's weights learn through the normalisation
    bg = head.da.conv.weight.grad[0]
    assert bg.abs().sum() > 0
    # only the segment rows of the group's images are used
    seg = head.cma.segment_embed.weight.grad
    assert (seg[:2].abs().sum(1) > 0).all()
    assert seg[2:].abs().sum() == 0


def test_da_only_ablation_head():
    head = _head(cma_cfg=dict(num_layers=0)).train()
    feats = _randn(4, C, 3, 3, seed=10)
    out = head(feats)
    x = head.class_features(feats, out['masks'])
    exp = torch.einsum('nkd,kd->nk', x.mean((3, 4)),
                       head.cma.classifier.weight[:, :, 0])
    assert torch.allclose(out['logits'], exp, atol=1e-6)


# =====================================================================
# inside WSClassifier
# =====================================================================
def _classifier(**test_cfg):
    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='WSClassifier',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1]),
            backbone=dict(
                type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                out_indices=(3, ), dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1), contract_dilation=True),
            head=dict(
                type='EDAMHead', in_channels=64, num_classes=K, embed_dims=D,
                group_size=2, cma_cfg=dict(num_heads=2, ffn_channels=32)),
            test_cfg=test_cfg))
    head_state = {k: v.clone() for k, v in model.head.state_dict().items()}
    model.init_weights()
    # the head keeps its official (Xavier) initialisation
    for k, v in model.head.state_dict().items():
        assert torch.equal(v, head_state[k]), k
    return model


def test_ws_classifier_loss_and_train_step_record():
    from mmwsss.models.classifiers.ws_classifier import \
        enable_train_step_record
    model = _classifier().train()
    assert isinstance(model.head, EDAMHead)
    enable_train_step_record(model)
    x = torch.rand(2, 3, 32, 32)
    ds = [_sample([1, 0, 1]), _sample([1, 1, 0])]
    losses = model(x, ds, mode='loss')
    assert losses['loss_cls'].requires_grad
    losses['loss_cls'].backward()
    assert model.head.cma.classifier.weight.grad is not None
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0
    step = model.last_train_step
    assert step.class_maps.shape == (2, K, 4, 4)
    assert step.logits.shape == (2, K)
    assert step.extras['da_background'].shape == (2, 1, 4, 4)
    assert not step.extras['da_background'].requires_grad
    with pytest.raises(ValueError, match='group_size'):
        model(torch.rand(3, 3, 32, 32), ds + [_sample([0, 0, 1])],
              mode='loss')


def test_ws_classifier_predict():
    model = _classifier(scales=(1.0, 0.5), flip=True).eval()
    x = torch.rand(2, 3, 32, 32)
    ds = [_sample([1, 0, 1]), _sample([0, 1, 0], ori=(48, 40))]
    out = model(x, ds, mode='predict')
    cams = out[0].pred_cams.data
    assert cams.shape == (K, 32, 32)
    assert out[1].pred_cams.data.shape == (K, 48, 40)
    for c in (0, 2):
        assert cams[c].max().item() == pytest.approx(1.0, abs=1e-4)
        assert cams[c].min() >= 0
    assert cams[1].abs().sum() == 0
    assert out[1].pred_cams.data[[0, 2]].abs().sum() == 0
    assert out[1].pred_cams.data[1].max().item() == pytest.approx(
        1.0, abs=1e-4)
    assert out[0].pred_score.shape == (K, )
    # the maps are the (TTA-fused) DA masks: the CMA does not change them
    _randomize_cma_(model.head, seed=12)
    again = model(x, [_sample([1, 0, 1]), _sample([0, 1, 0], ori=(48, 40))],
                  mode='predict')
    assert torch.equal(again[0].pred_cams.data, cams)
    assert not torch.allclose(again[0].pred_score, out[0].pred_score)
    # single scale, no flip: exactly the upsampled, normalised DA masks
    m1 = _classifier(scales=(1.0, ), flip=False, restrict='none').eval()
    with torch.no_grad():
        fg = m1.head.da.foreground(m1.head.da(m1.extract_feat(x)[-1]))
        got = m1.predict(x[:1], [_sample([1, 1, 1])])[0].pred_cams.data
    ref = F.interpolate(fg[:1], (32, 32), mode='bilinear',
                        align_corners=False)[0]
    ref = ref / (ref.amax((1, 2), keepdim=True) + 1e-5)
    assert torch.allclose(got, ref, atol=1e-5)


def test_tta_runs_the_cma_once_per_batch():
    """The CMA gives only the image scores, which the classifier keeps from one
    test-time pass (scale 1): the other scales and flips do not run it."""
    from unittest import mock

    from mmwsss.models import WSClassifier
    from mmwsss.structures import WSSSDataSample
    model = WSClassifier(
        backbone=dict(type='mmseg.ResNetV1c', depth=18, stem_channels=8,
                      base_channels=8, out_indices=(3, ), dilations=(1, 1, 2, 4),
                      strides=(1, 2, 1, 1), contract_dilation=True),
        head=dict(type='EDAMHead', in_channels=64, num_classes=3, embed_dims=8),
        test_cfg=dict(scales=(1.0, 0.5, 1.5), flip=True))
    model.eval()
    samples = []
    for _ in range(2):
        ds = WSSSDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32)))
        ds.gt_label = torch.tensor([1., 0., 1.])
        samples.append(ds)
    calls = []
    real = model.head.cma.forward
    with mock.patch.object(model.head.cma, 'forward',
                           side_effect=lambda *a, **k: calls.append(1) or
                           real(*a, **k)):
        out = model.predict(torch.randn(2, 3, 32, 32), samples)
    assert len(calls) == 1
    assert out[0].pred_score.shape == (3, )
    assert float(out[0].pred_cams.data[0].max()) == pytest.approx(1.0, abs=1e-4)
