import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from mmwsss.models.heads import CAMHead
from mmwsss.structures import WSSSDataSample


def _classifier(**test_cfg):
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    from mmwsss.registry import MODELS
    return MODELS.build(
        dict(
            type='WSClassifier',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1]),
            backbone=dict(
                type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                out_indices=(3, ), dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1)),
            head=dict(
                type='CAMHead', in_channels=64, num_classes=5,
                num_extra_convs=1, extra_channels=16),
            test_cfg=test_cfg)).eval()


def _sample(label, ori=(40, 48), img=None):
    ds = WSSSDataSample(metainfo=dict(
        img_id='x', ori_shape=ori, img_shape=img or ori))
    ds.gt_label = torch.tensor(label, dtype=torch.float32)
    return ds


def test_cam_eq2():
    from mmwsss.models.utils import CAM_EPS, normalize_cams
    f = torch.tensor([[[[-1., 2.], [4., 0.]], [[-3., -1.], [-2., -5.]]]])
    a = normalize_cams(f)
    assert torch.equal(a, CAMHead(in_channels=1, num_classes=2).cam(f))
    assert torch.equal(a[0, 0], torch.tensor([[0., 2.], [4., 0.]]) / (4 + CAM_EPS))
    assert torch.allclose(a[0, 0], torch.tensor([[0., .5], [1., 0.]]))
    assert torch.equal(a[0, 1], torch.zeros(2, 2))  # no NaN
    assert a.min() >= 0 and a.max() <= 1


def test_head_loss_is_multilabel_soft_margin():
    head = CAMHead(in_channels=4, num_classes=3)
    feats = torch.randn(2, 4, 5, 5)
    ds = [_sample([1, 0, 1]), _sample([0, 1, 0])]
    for d in ds:
        d.gt_label = d.gt_label[:3]
    losses, f = head.loss(feats, ds)
    s = f.mean((2, 3))
    y = torch.tensor([[1., 0, 1], [0, 1, 0]])
    ref = -(y * F.logsigmoid(s) + (1 - y) * F.logsigmoid(-s)).mean()
    assert torch.allclose(losses['loss_cls'], ref, atol=1e-6)
    assert head.num_classes_excludes_background


def test_modes_and_predict_shapes():
    model = _classifier()
    x = torch.rand(2, 3, 40, 48)
    assert model(x, mode='tensor').shape == (2, 5, 5, 6)
    ds = [_sample([1, 0, 0, 1, 0]), _sample([0, 0, 1, 0, 0], ori=(80, 96))]
    model.train()
    losses = model(x, ds, mode='loss')
    assert losses['loss_cls'].requires_grad
    model.eval()
    out = model(x, ds, mode='predict')
    cams0 = out[0].pred_cams.data
    assert cams0.shape == (5, 40, 48)
    assert out[1].pred_cams.data.shape == (5, 80, 96)  # original size
    # restricted to GT classes, max-normalised
    assert torch.equal(out[0].pred_cam_labels, torch.tensor([0, 3]))
    assert cams0[[1, 2, 4]].abs().sum() == 0
    for c in (0, 3):
        assert cams0[c].max() <= 1 and cams0[c].min() >= 0
    assert out[0].pred_score.shape == (5, )
    assert ((out[0].pred_score > 0) & (out[0].pred_score < 1)).all()


def test_flip_equivariance_and_fusion():
    model = _classifier(scales=(1.0, 0.5), flip=True)
    x = torch.rand(1, 3, 32, 32)
    a = model.predict(x, [_sample([1] * 5, ori=(32, 32))])[0].pred_cams.data
    b = model.predict(x.flip(-1),
                      [_sample([1] * 5, ori=(32, 32))])[0].pred_cams.data
    # flip TTA makes the CAM exactly flip-equivariant
    assert torch.allclose(a, b.flip(-1), atol=1e-5)
    m = _classifier(scales=(1.0, ), flip=False, restrict='none')
    single = m.predict(x, [_sample([1] * 5, ori=(32, 32))])[0].pred_cams.data
    f = m(x, mode='tensor')
    ref = F.interpolate(F.relu(f), (32, 32), mode='bilinear',
                        align_corners=False)[0]
    ref = ref / (ref.amax((1, 2), keepdim=True) + 1e-5)
    assert torch.allclose(single, ref, atol=1e-5)


def test_restrict_pred_without_gt():
    model = _classifier(restrict='gt', pred_threshold=2.0)  # nothing passes
    ds = WSSSDataSample(metainfo=dict(ori_shape=(32, 32), img_shape=(32, 32)))
    out = model.predict(torch.rand(1, 3, 32, 32), [ds])[0]
    assert out.pred_cam_labels.numel() == 1  # falls back to top-1
    assert out.pred_cam_labels.item() == out.pred_score.argmax().item()


def test_padding_is_cropped():
    model = _classifier(scales=(1.0, ), flip=False, restrict='none')
    x = torch.rand(1, 3, 32, 40)
    padded = F.pad(x, (0, 8, 0, 8))
    ds = _sample([1] * 5, ori=(32, 40), img=(32, 40))
    out = model.predict(padded, [ds])[0].pred_cams.data
    assert out.shape == (5, 32, 40)


def test_bad_test_cfg():
    with pytest.raises(ValueError, match='fusion'):
        _classifier(fusion='mean')


def test_loss_without_labels_is_clear():
    model = _classifier()
    ds = WSSSDataSample(metainfo=dict(ori_shape=(32, 32)))
    with pytest.raises(ValueError, match='gt_label'):
        model(torch.rand(1, 3, 32, 32), [ds], mode='loss')


def test_mmpretrain_backbone_by_config():
    """A dilated ResNet from MMPretrain works through the config alone."""
    init_default_scope('mmwsss')
    from mmwsss.registry import MODELS
    model = MODELS.build(
        dict(
            type='WSClassifier',
            backbone=dict(
                type='mmpretrain.ResNetV1d', depth=18, strides=(1, 2, 1, 1),
                dilations=(1, 1, 2, 4), out_indices=(3, )),
            head=dict(type='CAMHead', in_channels=512, num_classes=3)))
    assert model(torch.rand(1, 3, 64, 64), mode='tensor').shape == (1, 3, 8, 8)


def test_flip_fusion():
    """test_cfg.flip_fusion fuses a scale's flip pair before the scales are
    fused by `fusion` (VWL: max over the pair, sum over the scales); it
    defaults to `fusion`; the pair's fusion is what the maps change with."""
    scales = (1.0, 0.5)
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(3))

    def manual(model, pair):
        total = 0
        with torch.no_grad():
            for s in scales:
                xs = x if s == 1.0 else F.interpolate(
                    x, size=(int(32 * s), int(40 * s)), mode='bilinear',
                    align_corners=False)
                a, b = (F.interpolate(F.relu(model(v, mode='tensor')),
                                      (32, 40), mode='bilinear',
                                      align_corners=False)
                        for v in (xs, xs.flip(-1)))
                b = b.flip(-1)
                total = total + (torch.maximum(a, b) if pair == 'max' else
                                 a + b)
        total = total[0]
        return total / (total.amax((1, 2), keepdim=True) + 1e-5)

    cams = {}
    for pair in ('max', 'sum'):
        model = _classifier(scales=scales, flip=True, fusion='sum',
                            flip_fusion=pair, restrict='none')
        assert model.test_cfg['flip_fusion'] == pair
        cams[pair] = model.predict(
            x, [_sample([1] * 5, ori=(32, 40))])[0].pred_cams.data
        assert torch.allclose(cams[pair], manual(model, pair), atol=1e-5)
    assert (cams['max'] - cams['sum']).abs().max() > 1e-3
    assert _classifier(fusion='max').test_cfg['flip_fusion'] == 'max'
    assert _classifier().test_cfg['flip_fusion'] == 'sum'
    with pytest.raises(ValueError, match='flip_fusion'):
        _classifier(flip_fusion='mean')
