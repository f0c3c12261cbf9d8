"""IAMHead: the integral attention model's head (OAA+, [T] §3.4).

References: docs/methods/oaa.md, section 'References'.
"""
import pytest
import torch
from mmengine.structures import PixelData

from mmwsss.models.heads.iam_head import IAMHead
from mmwsss.models.losses.hybrid_attention_loss import hybrid_attention_loss
from mmwsss.structures import WSSSDataSample


def _sample(label, att, img_shape, **meta):
    ds = WSSSDataSample(metainfo=dict(img_id='x', ori_shape=img_shape,
                                      img_shape=img_shape, **meta))
    ds.gt_label = torch.tensor(label, dtype=torch.float32)
    if att is not None:
        ds.gt_attention = PixelData(data=att)
    return ds


def _batch(seed=0, **meta):
    g = torch.Generator().manual_seed(seed)
    att0 = torch.rand(3, 6, 8, generator=g) * (torch.rand(3, 6, 8, generator=g)
                                                > .4)
    att1 = torch.rand(3, 4, 5, generator=g) * (torch.rand(3, 4, 5, generator=g)
                                                > .4)
    return [_sample([1, 0, 1], att0, (6, 8), **meta),
            _sample([0, 1, 0], att1, (4, 5), **meta)], att0, att1


def _head(**kw):
    torch.manual_seed(0)
    return IAMHead(in_channels=4, num_classes=3, **kw)


def test_loss_matches_reference_with_padding_and_absent_classes():
    head = _head()
    ds, att0, att1 = _batch(batch_input_shape=(8, 8))
    feats = torch.randn(2, 4, 8, 8)  # stride 1: score map = input size
    losses, f = head.loss(feats, ds)
    assert set(losses) == {'loss_hybrid'} and f.shape == (2, 3, 8, 8)
    targets = torch.zeros(2, 3, 8, 8)
    targets[0, :, :6, :8] = att0
    targets[1, :, :4, :5] = att1
    targets[0, 1] = 0  # absent classes: all-zero targets
    targets[1, [0, 2]] = 0
    valid = torch.zeros(2, 8, 8, dtype=torch.bool)
    valid[0, :6, :8] = True
    valid[1, :4, :5] = True
    ref = hybrid_attention_loss(f, targets, valid)
    assert losses['loss_hybrid'].item() == pytest.approx(ref.item(), rel=1e-6)
    losses['loss_hybrid'].backward()
    assert head.classifier.weight.grad is not None


def test_padding_is_ignored():
    head = _head()
    ds, _, _ = _batch(batch_input_shape=(8, 8))
    feats = torch.randn(2, 4, 4, 4)  # stride 2
    loss = head.loss(feats, ds)[0]['loss_hybrid']
    # sample 1 (4x5 in 8x8) covers the score map cells [:2, :2] (the half-valid
    # column 2 is < 0.5 valid after the bilinear resize); the 1x1 conv is local,
    # so changing features elsewhere changes logits only in the padded area
    feats2 = feats.clone()
    feats2[1, :, 2:, :] = 100.
    feats2[1, :, :, 2:] = -100.
    assert head.loss(feats2, ds)[0]['loss_hybrid'].item() == pytest.approx(
        loss.item(), rel=1e-6)
    feats3 = feats.clone()
    feats3[1, :, 1, 1] += 5.
    assert head.loss(feats3, ds)[0]['loss_hybrid'].item() != pytest.approx(
        loss.item(), rel=1e-6)


def test_absent_class_targets_are_zeroed():
    head = _head()
    ds, att0, att1 = _batch(batch_input_shape=(8, 8))
    feats = torch.randn(2, 4, 4, 4)
    loss = head.loss(feats, ds)[0]['loss_hybrid']
    # targets of classes not in gt_label do not matter
    ds[0].gt_attention = PixelData(data=att0 * torch.tensor([1., 0, 1])[:, None,
                                                                       None])
    ds[1].gt_attention = PixelData(data=torch.ones_like(att1))
    loss2 = head.loss(feats, ds)[0]['loss_hybrid']
    assert loss2.item() != pytest.approx(loss.item(), rel=1e-6)  # class 1 of ds[1]
    ds[1].gt_attention = PixelData(data=att1 * torch.tensor([0., 1, 0])[:, None,
                                                                       None])
    loss3 = head.loss(feats, ds)[0]['loss_hybrid']
    assert loss3.item() == pytest.approx(loss.item(), rel=1e-6)


def test_input_shape_fallbacks():
    head = _head()
    feats = torch.randn(2, 4, 5, 5)
    ds, _, _ = _batch(batch_input_shape=(10, 10))
    ref = head.loss(feats, ds)[0]['loss_hybrid']
    # SegDataPreProcessor records padding_size = (left, right, top, bottom)
    ds2, _, _ = _batch()
    ds2[0].set_metainfo(dict(padding_size=(0, 2, 0, 4)))
    ds2[1].set_metainfo(dict(padding_size=(0, 5, 0, 6)))
    assert head.loss(feats, ds2)[0]['loss_hybrid'].item() == pytest.approx(
        ref.item(), rel=1e-6)
    # without any record: the largest img_shape of the batch (here 6x8)
    ds3, _, _ = _batch()
    ds4, _, _ = _batch(batch_input_shape=(6, 8))
    assert head.loss(feats, ds3)[0]['loss_hybrid'].item() == pytest.approx(
        head.loss(feats, ds4)[0]['loss_hybrid'].item(), rel=1e-6)
    ds2[1].set_metainfo(dict(padding_size=(0, 1, 0, 1)))
    with pytest.raises(ValueError, match='disagree'):
        head.loss(feats, ds2)


def test_errors():
    head = _head()
    feats = torch.randn(2, 4, 4, 4)
    ds, _, _ = _batch(batch_input_shape=(8, 8))
    del ds[1].gt_attention
    with pytest.raises(ValueError, match='LoadAttentionTargets'):
        head.loss(feats, ds)
    ds, _, _ = _batch(batch_input_shape=(8, 8))
    ds[0].gt_attention = PixelData(data=torch.zeros(2, 6, 8))
    with pytest.raises(ValueError, match='num_classes is 3'):
        head.loss(feats, ds)


def test_registry_loss_config_and_inherited_cam():
    from mmengine.registry import init_default_scope

    from mmwsss.registry import MODELS
    init_default_scope('mmwsss')
    head = MODELS.build(
        dict(type='IAMHead', in_channels=4, num_classes=3, num_extra_convs=1,
             extra_channels=8,
             loss=dict(type='HybridAttentionLoss', reduction='global',
                       loss_name='loss_iam', loss_weight=.5)))
    assert isinstance(head, IAMHead) and head.loss_decode.reduction == 'global'
    ds, _, _ = _batch(batch_input_shape=(8, 8))
    losses, f = head.loss(torch.randn(2, 4, 4, 4), ds)
    assert set(losses) == {'loss_iam'}
    cam = head.cam(f)
    assert cam.shape == f.shape and cam.min() >= 0 and cam.max() <= 1


def test_ws_classifier_with_iam_head():
    """End to end through SegDataPreProcessor (padding) and WSClassifier."""
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    from mmwsss.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='WSClassifier',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1],
                size_divisor=8),
            backbone=dict(
                type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                out_indices=(3, ), dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1)),
            head=dict(
                type='IAMHead', in_channels=64, num_classes=3,
                num_extra_convs=1, extra_channels=16)))
    data = dict(
        inputs=[torch.randint(0, 255, (3, 30, 36), dtype=torch.uint8),
                torch.randint(0, 255, (3, 21, 40), dtype=torch.uint8)],
        data_samples=[
            _sample([1, 0, 0], torch.rand(3, 30, 36), (30, 36)),
            _sample([0, 1, 1], torch.rand(3, 21, 40), (21, 40))])
    data = model.data_preprocessor(data, training=True)
    assert data['inputs'].shape[-2:] == (32, 40)
    # the padded input shape is recovered from the preprocessor's padding_size
    assert IAMHead._input_shape(data['data_samples']) == (32, 40)
    model.train()
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_hybrid'} and torch.isfinite(
        losses['loss_hybrid'])
    losses['loss_hybrid'].backward()
    model.eval()
    with torch.no_grad():
        out = model(data['inputs'], data['data_samples'], mode='predict')
    assert out[0].pred_cams.data.shape == (3, 30, 36)
