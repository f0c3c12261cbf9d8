"""GAINHead (Li et al., "Tell Me Where to Look: Guided Attention Inference
Network", CVPR 2018 / TPAMI 2020): attention, the two streams, the losses."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.structures import PixelData

from mmwsss.models.heads import BaseCAMHead, CAMHead, GAINHead
from mmwsss.models.losses import (attention_mining_loss, box_attention_loss,
                                  pixel_attention_loss)
from mmwsss.models.utils import erase_inputs, minmax_normalize, soft_mask
from mmwsss.structures import WSSSDataSample

K = 3


class MLPHead(BaseCAMHead):
    """A non-linear (ReLU MLP) head without a closed-form Grad-CAM: the outputs
    are the features, the logits ``fc2(ReLU(fc1(GAP(f))))``."""

    def __init__(self, in_channels=64, hidden=16, **kwargs):
        super().__init__(**kwargs)
        self.fc1 = nn.Linear(in_channels, hidden)
        self.fc2 = nn.Linear(hidden, self.num_classes)

    def forward(self, feats):
        return self._select(feats)

    def image_logits(self, outputs):
        return self.fc2(F.relu(self.fc1(outputs.mean((2, 3)))))


class LSEHead(CAMHead):
    """CAMHead with another pooling: no closed form."""

    def image_logits(self, outputs):
        return torch.logsumexp(outputs.flatten(2), 2)


class IdentityBackbone(nn.Module):
    """Features = the input (stride 1): padding-equivariant."""

    def forward(self, x):
        return (x, )


def _register():
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def _resnet():
    return dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                out_indices=(3, ), dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1))


def _classifier(seed=0, cls_head=None, backbone=None, **head_kw):
    _register()
    from mmwsss.registry import MODELS
    torch.manual_seed(seed)
    if cls_head is None:
        cls_head = dict(type='CAMHead', in_channels=64, num_classes=K,
                        num_extra_convs=1, extra_channels=16)
    model = MODELS.build(dict(
        type='WSClassifier',
        data_preprocessor=dict(type='WSSSDataPreProcessor', mean=[0, 0, 0],
                               std=[1, 1, 1], size_divisor=8),
        backbone=backbone or _resnet(),
        head=dict(type='GAINHead', cls_head=cls_head, **head_kw),
        test_cfg=dict(scales=(1.0, ), flip=False, restrict='none')))
    model.init_weights()
    return model


def _sample(label, img_shape=(32, 32), **fields):
    ds = WSSSDataSample(metainfo=dict(img_id='x', img_shape=img_shape,
                                      ori_shape=img_shape))
    ds.gt_label = torch.tensor(label, dtype=torch.float32)
    for key, value in fields.items():
        setattr(ds, key, PixelData(data=value))
    return ds


def _batch(seed=0, n=3, size=(32, 32)):
    g = torch.Generator().manual_seed(seed)
    labels = [[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]][:n]
    return torch.randn(n, 3, *size, generator=g), \
        [_sample(label, size) for label in labels]


class Recorder:
    """An ``extract_feat`` for the attention-mining stream that records its
    inputs."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, x, bn_eval=False, detach_weights=False):
        self.calls.append((x.detach().clone(), bn_eval, detach_weights))
        return self.model.extract_feat_stream(
            x, bn_eval=bn_eval, detach_weights=detach_weights)


@pytest.fixture(autouse=True)
def fresh_message_hub():
    """No training loop: the head counts its own loss calls."""
    MessageHub.get_instance('test_gain_head_hub')
    yield


def test_build_options_and_errors():
    _register()
    gain = GAINHead(cls_head=dict(type='CAMHead', in_channels=8,
                                  num_classes=4))
    assert gain.attention == 'closed_form' and not gain.cam_requires_grad
    assert gain.num_classes == 4 and gain.loss_needs_inputs
    assert not CAMHead.loss_needs_inputs
    mlp = GAINHead(cls_head=dict(type=MLPHead, in_channels=8, num_classes=4))
    assert mlp.attention == 'autograd' and mlp.cam_requires_grad
    lse = GAINHead(cls_head=dict(type=LSEHead, in_channels=8, num_classes=4))
    assert lse.attention == 'autograd'  # another pooling: no closed form
    forced = GAINHead(cls_head=dict(type='CAMHead', in_channels=8,
                                    num_classes=4), attention='autograd')
    assert forced.cam_requires_grad
    assert GAINHead(cls_head=dict(type='CAMHead', in_channels=8, num_classes=4),
                    num_classes=4).num_classes == 4
    head = dict(type='CAMHead', in_channels=8, num_classes=4)
    for kw, match in [(dict(attention='gradcam'), 'attention'),
                      (dict(am_score='prob'), 'am_score'),
                      (dict(am_grad='none'), 'am_grad'),
                      (dict(mining_bn='frozen'), 'mining_bn'),
                      (dict(normalize='l2'), 'normalize'),
                      (dict(ext_supervision=('mask', )), 'ext_supervision'),
                      (dict(am_start_iter=-1), 'am_start_iter'),
                      (dict(ext_start_iter=1.5), 'ext_start_iter'),
                      (dict(num_classes=5), 'num_classes'),
                      (dict(loss_weight=2.), 'loss_weight'),
                      (dict(in_index=0), 'in_index')]:
        with pytest.raises(ValueError, match=match):
            GAINHead(cls_head=head, **kw)
    with pytest.raises(ValueError, match='closed_form'):
        GAINHead(cls_head=dict(type=MLPHead, in_channels=8, num_classes=4),
                 attention='closed_form')
    with pytest.raises(TypeError, match='BaseCAMHead'):
        GAINHead(cls_head=dict(type='GAINHead', cls_head=head))
    with pytest.raises(ValueError, match='extract_feat'):
        gain.loss(torch.randn(1, 8, 4, 4), [_sample([1, 0, 0, 0])])


def test_cam_head_split_is_its_forward():
    torch.manual_seed(0)
    head = CAMHead(in_channels=8, num_classes=3, num_extra_convs=2,
                   extra_channels=4)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(
        head(x), head.outputs_from_pre_logits(head.pre_logits(x)))
    assert head.pre_logits(x).shape == (2, 4, 5, 5)
    assert head.linear_classifier() is head.classifier
    assert LSEHead(in_channels=8, num_classes=3).linear_classifier() is None
    assert MLPHead(in_channels=8, num_classes=3).linear_classifier() is None


def _grads(model, loss):
    names = [n for n, p in model.named_parameters()]
    gs = torch.autograd.grad(loss, [p for _, p in model.named_parameters()],
                             allow_unused=True)
    return {n: (torch.zeros_like(p) if g is None else g)
            for (n, p), g in zip(model.named_parameters(), gs)}, names


@pytest.mark.parametrize('second_order', [False, True])
def test_closed_form_equals_autograd_on_the_linear_head(second_order):
    closed = _classifier(second_order=second_order, attention='closed_form')
    auto = _classifier(second_order=second_order, attention='autograd')
    auto.load_state_dict(closed.state_dict())
    x, ds = _batch()
    lc, oc = closed.head.loss(closed.extract_feat(x), ds, inputs=x,
                              extract_feat=closed.extract_feat_stream)
    la, oa = auto.head.loss(auto.extract_feat(x), ds, inputs=x,
                            extract_feat=auto.extract_feat_stream)
    assert set(lc) == set(la) == {'loss_cls', 'loss_am', 'am_mask_mean'}
    for key in lc:
        torch.testing.assert_close(lc[key], la[key], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(oc['attention'], oa['attention'], atol=1e-7,
                               rtol=1e-4)
    gc, names = _grads(closed, lc['loss_cls'] + lc['loss_am'])
    ga, _ = _grads(auto, la['loss_cls'] + la['loss_am'])
    for name in names:
        torch.testing.assert_close(gc[name], ga[name], atol=1e-6, rtol=1e-3,
                                   msg=name)


def test_per_class_masking_pairs_and_am_loss():
    """Image 0 has classes 0 and 2, image 1 none, image 2 class 1: S_am gets
    exactly three masked images, each erased by the attention of its class."""
    model = _classifier().eval()
    x, ds = _batch()
    rec = Recorder(model)
    feats = model.extract_feat(x)
    losses, outputs = model.head.loss(feats, ds, inputs=x, extract_feat=rec)
    assert len(rec.calls) == 1
    erased, bn, detach = rec.calls[0]
    assert erased.shape == (3, 3, 32, 32) and bn and not detach
    # the expected masks, by hand (closed form of the CAM head)
    inner = model.head.cls_head
    f = inner.pre_logits(feats)
    cam = inner.classifier(f) - inner.classifier.bias[:, None, None]
    pairs = [(0, 0), (0, 2), (2, 1)]
    for p, (b, c) in enumerate(pairs):
        a = F.relu(cam[b:b + 1, c:c + 1]) / (f.shape[-2] * f.shape[-1])
        a = F.interpolate(a, size=(32, 32), mode='bilinear',
                          align_corners=False)
        t = torch.sigmoid(10 * (minmax_normalize(a) - 0.5))
        torch.testing.assert_close(erased[p:p + 1], x[b:b + 1] * (1 - t),
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(outputs['attention'][b, c],
                                   F.relu(cam[b, c]) / 16)
    assert outputs['attention'][1].abs().sum() == 0  # no labels
    assert outputs['attention'][0, 1].abs().sum() == 0  # not a GT class
    # L_am: per image the mean sigmoid score of its classes, then over images
    s = torch.sigmoid(inner.image_logits(inner(model.extract_feat(erased))))
    ref = ((s[0, 0] + s[1, 2]) / 2 + s[2, 1]) / 2
    assert losses['loss_am'].item() == pytest.approx(ref.item(), rel=1e-5)
    assert 0 < losses['am_mask_mean'] < 1
    extras = model.head.train_step_extras(outputs)
    assert extras['mask_mean'].shape == (3, ) and extras['mask_mean'][1] == 0


def test_images_without_labels_give_no_nan():
    model = _classifier().train()
    x, _ = _batch()
    ds = [_sample([0, 0, 0]) for _ in range(3)]
    rec = Recorder(model)
    losses, outputs = model.head.loss(model.extract_feat(x), ds, inputs=x,
                                      extract_feat=rec)
    assert not rec.calls  # no pair: no attention-mining stream
    assert losses['loss_am'].item() == 0
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters()
               if p.grad is not None)
    assert outputs['attention'].abs().sum() == 0


def test_mask_only_reaches_the_backbone_through_the_mask():
    x, ds = _batch()
    grads = {}
    for am_grad in ('all', 'mask_only'):
        model = _classifier(am_grad=am_grad).train()
        rec = Recorder(model)
        losses, _ = model.head.loss(model.extract_feat(x), ds, inputs=x,
                                    extract_feat=rec)
        assert rec.calls[0][2] == (am_grad == 'mask_only')
        grads[am_grad], _ = _grads(model, losses['loss_am'])
        assert all(p.grad is None for p in model.parameters())
    conv1 = 'backbone.stem.0.weight'
    bias = 'head.cls_head.classifier.bias'
    # the backbone gets a gradient through I* -> T -> A -> f
    assert grads['mask_only'][conv1].abs().sum() > 0
    # the class conv only through the attention-mining stream's weights
    assert grads['mask_only'][bias].abs().sum() == 0
    assert grads['all'][bias].abs().sum() > 0
    assert not torch.allclose(grads['mask_only'][conv1], grads['all'][conv1])


def test_second_order_for_an_attention_only_loss():
    """A pure attention loss (L_e) trains the inner head only with second-order
    Grad-CAM; the backbone gradient is the same (ReLU head)."""
    x, _ = _batch()
    seg = torch.zeros(1, 32, 32, dtype=torch.long)
    seg[:, 4:20, 8:28] = 1
    ds = [_sample([1, 0, 0], gt_sem_seg=seg), _sample([0, 1, 0])]
    grads = {}
    for second in (False, True):
        model = _classifier(
            cls_head=dict(type=MLPHead, in_channels=64, num_classes=K),
            second_order=second, ext_supervision=('pixel', ),
            am_start_iter=10**9).train()
        losses, _ = model.head.loss(model.extract_feat(x[:2]), ds,
                                    inputs=x[:2],
                                    extract_feat=model.extract_feat_stream)
        assert losses['loss_am'].item() == 0
        grads[second], names = _grads(model, losses['loss_ext_pixel'])
    head = [n for n in names if n.startswith('head.')]
    assert all(grads[False][n].abs().sum() == 0 for n in head)
    assert any(grads[True][n].abs().sum() > 0 for n in head)
    for n in names:
        if n.startswith('backbone.'):
            torch.testing.assert_close(grads[False][n], grads[True][n],
                                       atol=1e-6, rtol=1e-4, msg=n)


@pytest.mark.parametrize('attention', ['closed_form', 'autograd'])
def test_no_param_grad_side_effects(attention):
    model = _classifier(attention=attention, am_grad='mask_only').train()
    x, ds = _batch()
    losses = model.loss(x, ds)
    assert all(p.grad is None for p in model.parameters())
    assert losses['loss_am'].requires_grad


def test_predict_under_no_grad_gives_valid_maps():
    closed = _classifier().eval()
    auto = _classifier(attention='autograd').eval()
    mlp = _classifier(cls_head=dict(type=MLPHead, in_channels=64,
                                    num_classes=K)).eval()
    auto.load_state_dict(closed.state_dict())
    x, ds = _batch()
    outs = []
    for model in (closed, auto, mlp):
        with torch.no_grad():
            out = model.predict(x, copy.deepcopy(ds))
        cams = torch.stack([o.pred_cams.data for o in out])
        assert cams.shape == (3, K, 32, 32) and not cams.requires_grad
        assert torch.isfinite(cams).all() and cams.min() >= 0
        assert cams.max() <= 1 and cams.max() > 0.5
        outs.append(cams)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-4)
    # the head's maps are Grad-CAM of every class
    feats = closed.extract_feat(x)
    maps, logits = closed.head.predict_maps(feats)
    inner = closed.head.cls_head
    f = inner.pre_logits(feats)
    ref = F.relu(inner.classifier(f) - inner.classifier.bias[:, None, None])
    torch.testing.assert_close(maps, ref / 16)
    torch.testing.assert_close(logits, inner.image_logits(inner(feats)))


def test_descent_step_lowers_the_attention_mining_loss():
    model = _classifier(seed=1).train()
    x, ds = _batch(seed=1, n=4)
    optim = torch.optim.SGD(model.parameters(), lr=0.05)
    before = model.loss(x, ds)
    optim.zero_grad()
    (before['loss_cls'] + before['loss_am']).backward()
    optim.step()
    after = model.loss(x, ds)
    assert after['loss_am'].item() < before['loss_am'].item()
    assert after['loss_cls'].item() < before['loss_cls'].item() + 1e-2


def _ext_batch():
    x, _ = _batch(n=3, size=(32, 32))
    seg = torch.full((1, 32, 32), 255, dtype=torch.long)  # padded with 255
    seg[:, :24, :28] = 0
    seg[:, 4:16, 6:20] = 1  # class 0
    seg[:, 16:24, 6:20] = 3  # class 2
    seg[:, 0, :] = 255  # an ignored row inside the image
    boxes = torch.zeros(K, 24, 32, dtype=torch.uint8)
    boxes[1, 2:20, 3:25] = 1
    sal = torch.rand(1, 24, 32, generator=torch.Generator().manual_seed(3))
    ds = [_sample([1, 0, 1], (24, 28), gt_sem_seg=seg),
          _sample([0, 1, 0], (24, 32), gt_box_mask=boxes, gt_saliency=sal),
          _sample([0, 1, 1], (32, 32))]
    return x, ds, seg, boxes, sal


def test_ext_losses_through_the_head():
    model = _classifier(ext_supervision=('pixel', 'box')).eval()
    x, ds, seg, boxes, sal = _ext_batch()
    feats = model.extract_feat(x)
    losses, _ = model.head.loss(feats, ds, inputs=x,
                                extract_feat=model.extract_feat_stream)
    assert {'loss_ext_pixel', 'loss_ext_box'} <= set(losses)
    # the same by hand from the normalised attention of the pairs
    head = model.head
    inner = head.cls_head
    f = inner.pre_logits(feats)
    logits = inner.image_logits(inner.outputs_from_pre_logits(f))
    images = torch.tensor([0, 0, 1, 2, 2])
    classes = torch.tensor([0, 2, 1, 1, 2])
    att = head.pair_attention(f, logits, images, classes, False)
    norm, valid = head.normalized_attention(
        att, images, (32, 32), [(24, 28), (24, 32), (32, 32)])
    s = seg[0]
    keep = (s != 255)[None].expand(2, -1, -1).clone()
    keep[:, 24:] = False
    keep[:, :, 28:] = False
    targets = torch.stack([(s == 1), (s == 3)]).float()
    ref = pixel_attention_loss(norm[:2, 0], targets, images[:2], keep)
    assert losses['loss_ext_pixel'].item() == pytest.approx(
        10 * ref.item(), rel=1e-5)
    b = torch.zeros(1, 32, 32)
    b[:, :24] = boxes[1].float()
    sm = torch.zeros(1, 32, 32)
    sm[:, :24] = sal
    ref = box_attention_loss(norm[2:3, 0], b, sm, images[2:3], valid[2:3, 0])
    assert losses['loss_ext_box'].item() == pytest.approx(
        10 * ref.item(), rel=1e-5)
    # labels 255 are ignored (the row 0 inside the image counts otherwise)
    unmasked = pixel_attention_loss(norm[:2, 0], targets, images[:2],
                                    valid[:2, 0])
    assert abs(unmasked.item() - ref.item()) > 1e-4
    # plain GAIN ignores the fields (and says so for boxes)
    plain = _classifier().eval()
    losses, _ = plain.head.loss(plain.extract_feat(x), ds, inputs=x,
                                extract_feat=plain.extract_feat_stream)
    assert 'loss_ext_pixel' not in losses and 'loss_ext_box' not in losses
    assert 'gt_box_mask' in plain.head._warned_unused


def test_ext_pixel_uses_only_images_flagged_strong():
    """With strong subsets (``strong_pixel`` in the meta), a mask that the
    pipeline loaded for an unflagged image is not supervision."""
    model = _classifier(ext_supervision=('pixel', )).eval()
    x, ds, seg, *_ = _ext_batch()
    feats = model.extract_feat(x)

    def ext(samples):
        losses, _ = model.head.loss(feats, samples, inputs=x,
                                    extract_feat=model.extract_feat_stream)
        return losses.get('loss_ext_pixel')

    only_first = ext(ds)
    ds[2].gt_sem_seg = PixelData(data=seg.clone())  # loaded, not flagged
    for d, flag in zip(ds, (True, False, False)):
        d.set_metainfo(dict(strong_pixel=flag))
    assert ext(ds).item() == pytest.approx(only_first.item(), rel=1e-6)
    ds[2].set_metainfo(dict(strong_pixel=True))
    assert abs(ext(ds).item() - only_first.item()) > 1e-6
    ds[0].set_metainfo(dict(strong_pixel=False))
    ds[2].set_metainfo(dict(strong_pixel=False))
    assert ext(ds) is None


def test_ext_pixel_loss_decreases_in_a_few_steps():
    model = _classifier(ext_supervision=('pixel', ), am_start_iter=10**9,
                        mining_bn='train').train()
    x, ds, *_ = _ext_batch()
    ds = ds[:1]
    optim = torch.optim.SGD(model.parameters(), lr=0.05)
    values = []
    for _ in range(4):
        losses = model.loss(x[:1], ds)
        values.append(losses['loss_ext_pixel'].item())
        optim.zero_grad()
        losses['loss_ext_pixel'].backward()
        optim.step()
    assert values[-1] < values[0]


def test_ext_start_iter_warm_up():
    """Before ext_start_iter the extra-supervision loss is logged as 0 and gives no
    gradient; from it on, the loss is the same as without a warm-up; L_am keeps
    its own start."""
    x, ds, *_ = _ext_batch()
    ref = _classifier(ext_supervision=('pixel', )).train().loss(x, ds)
    model = _classifier(ext_supervision=('pixel', ), ext_start_iter=2).train()
    first = model.loss(x, ds)
    assert first['loss_ext_pixel'].item() == 0 and first['loss_am'].item() > 0
    assert first['loss_ext_pixel'].requires_grad
    model.loss(x, ds)
    third = model.loss(x, ds)
    torch.testing.assert_close(third['loss_ext_pixel'], ref['loss_ext_pixel'])


def test_ext_maps_must_cover_the_image():
    model = _classifier(ext_supervision=('pixel', ))
    x, _ = _batch(n=1)
    ds = [_sample([1, 0, 0], gt_sem_seg=torch.zeros(1, 16, 16).long())]
    with pytest.raises(ValueError, match='gt_sem_seg'):
        model.loss(x, ds)
    model = _classifier(ext_supervision=('box', ))
    ds = [_sample([1, 0, 0], gt_box_mask=torch.ones(K, 32, 32))]
    with pytest.raises(ValueError, match='gt_saliency'):
        model.loss(x, ds)


@pytest.mark.parametrize('mining_bn', ['eval', 'train'])
def test_mining_stream_and_batch_norm_statistics(mining_bn):
    model = _classifier(mining_bn=mining_bn).train()
    ref = copy.deepcopy(model)
    x, ds = _batch()
    model.loss(x, ds)
    ref.extract_feat(x)  # the classification stream alone
    bns = [(n, m) for n, m in model.named_modules()
           if isinstance(m, nn.BatchNorm2d)]
    ref_bn = dict(ref.named_modules())
    same = all(torch.equal(m.running_mean, ref_bn[n].running_mean)
               for n, m in bns)
    assert same == (mining_bn == 'eval')
    assert all(m.training for _, m in bns)


def test_extract_feat_stream_bn_eval_and_detached_weights():
    model = _classifier().train()
    x, _ = _batch()
    stats = [m.running_mean.clone() for m in model.modules()
             if isinstance(m, nn.BatchNorm2d)]
    out = model.extract_feat_stream(x, bn_eval=True)
    after = [m.running_mean for m in model.modules()
             if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(stats, after))
    assert all(m.training for m in model.modules())
    xr = x.clone().requires_grad_()
    det = model.extract_feat_stream(xr, bn_eval=True, detach_weights=True)
    torch.testing.assert_close(det[0], out[0])
    det[0].sum().backward()
    assert xr.grad.abs().sum() > 0
    assert all(p.grad is None and p.requires_grad
               for p in model.parameters())

    def boom(*args, **kwargs):
        raise RuntimeError('boom')

    model.backbone.forward = boom
    with pytest.raises(RuntimeError, match='boom'):
        model.extract_feat_stream(x, bn_eval=True)
    assert all(m.training for m in model.modules())


def test_padding_does_not_change_the_masks():
    """With a padding-equivariant network (features = the input, a bias-free
    CAM head) the masks of an image are the same alone and padded in a batch:
    the normalisation sees the valid area only, the padding is never erased."""
    model = _classifier(
        backbone=dict(type=IdentityBackbone),
        cls_head=dict(type='CAMHead', in_channels=3, num_classes=K)).eval()
    nn.init.zeros_(model.head.cls_head.classifier.bias)
    nn.init.normal_(model.head.cls_head.classifier.weight)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 3, 12, 16, generator=g)
    b = torch.randn(1, 3, 16, 10, generator=g)
    la, lb = [1, 0, 1], [0, 1, 0]
    padded = torch.zeros(2, 3, 16, 16)
    padded[0, :, :12, :16] = a[0]
    padded[1, :, :16, :10] = b[0]
    rec = Recorder(model)
    _, out = model.head.loss(
        model.extract_feat(padded),
        [_sample(la, (12, 16)), _sample(lb, (16, 10))], inputs=padded,
        extract_feat=rec)
    batch = rec.calls[0][0]
    assert batch.shape[0] == 3
    alone = []
    for img, label in ((a, la), (b, lb)):
        r = Recorder(model)
        _, o = model.head.loss(model.extract_feat(img),
                               [_sample(label, tuple(img.shape[-2:]))],
                               inputs=img, extract_feat=r)
        alone.append((r.calls[0][0], o['mask_mean']))
    torch.testing.assert_close(batch[:2, :, :12, :16], alone[0][0])
    torch.testing.assert_close(batch[2:, :, :16, :10], alone[1][0])
    assert batch[:2, :, 12:].abs().sum() == 0  # the padding stays 0
    assert batch[2:, :, :, 10:].abs().sum() == 0
    torch.testing.assert_close(out['mask_mean'],
                               torch.cat([alone[0][1], alone[1][1]]))


def test_am_start_iter_counts_training_steps_or_reads_the_runner():
    model = _classifier(am_start_iter=2).train()
    x, ds = _batch()
    values = [model.loss(x, ds)['loss_am'].item() for _ in range(3)]
    assert values[0] == values[1] == 0 and values[2] > 0
    # inside a training loop: the runner's iteration (restored by --resume)
    hub = MessageHub.get_instance('test_gain_runner_hub')
    hub.update_info('loop_stage', 'train')
    fresh = _classifier(am_start_iter=2).train()
    hub.update_info('iter', 5)
    assert fresh.head.current_iter() == 5
    assert fresh.loss(x, ds)['loss_am'].item() > 0
    hub.update_info('iter', 1)
    assert fresh.loss(x, ds)['loss_am'].item() == 0
    hub.pop_info('loop_stage')
    assert fresh.head.current_iter() == 2  # its own count of loss calls


def test_train_step_record_for_hooks():
    from mmwsss.models import enable_train_step_record
    model = _classifier().train()
    enable_train_step_record(model)
    x, ds = _batch()
    model.loss(x, ds)
    step = model.last_train_step
    assert step.class_maps.shape == (3, K, 4, 4)
    assert not step.class_maps.requires_grad
    assert step.class_maps[1].abs().sum() == 0 and step.class_maps.min() >= 0
    assert step.logits.shape == (3, K)
    assert set(step.extras) == {'mask_mean'}
    with pytest.raises(ValueError, match='predict_maps'):
        model.head.class_maps(model(x, mode='tensor'))


def test_softmax_and_logit_scores_and_alpha():
    x, ds = _batch()
    ref = _classifier().eval()
    base = ref.head.loss(ref.extract_feat(x), ds, inputs=x,
                         extract_feat=ref.extract_feat_stream)[0]
    for kw in (dict(am_score='softmax'), dict(am_score='logit'),
               dict(alpha=0.5)):
        model = _classifier(**kw).eval()
        rec = Recorder(model)
        losses, _ = model.head.loss(model.extract_feat(x), ds, inputs=x,
                                    extract_feat=rec)
        inner = model.head.cls_head
        logits = inner.image_logits(inner(model.extract_feat(rec.calls[0][0])))
        score = kw.get('am_score', 'sigmoid')
        expected = kw.get('alpha', 1.) * attention_mining_loss(
            logits, torch.tensor([0, 2, 1]), torch.tensor([0, 0, 2]), score)
        assert losses['loss_am'].item() == pytest.approx(expected.item(),
                                                         rel=1e-5)
        torch.testing.assert_close(losses['loss_cls'], base['loss_cls'])


def test_erase_is_the_shared_function():
    """The masked images are erase_inputs(I, T) with the soft mask of Eq. 4."""
    model = _classifier(normalize='max').eval()
    x, ds = _batch(n=1)
    ds = [_sample([0, 1, 0], (24, 30))]
    rec = Recorder(model)
    feats = model.extract_feat(x)
    model.head.loss(feats, ds, inputs=x, extract_feat=rec)
    head = model.head
    f = head.cls_head.pre_logits(feats)
    logits = head.cls_head.image_logits(head.cls_head.outputs_from_pre_logits(f))
    att = head.pair_attention(f, logits, torch.tensor([0]), torch.tensor([1]),
                              False)
    norm, valid = head.normalized_attention(att, torch.tensor([0]), (32, 32),
                                            [(24, 30)])
    assert norm.max().item() == pytest.approx(1.) and norm[~valid].abs().sum() == 0
    t = soft_mask(norm)
    ref = erase_inputs(x, [t[0, :, :24, :30]], [(24, 30)], fill_value=0.)
    torch.testing.assert_close(rec.calls[0][0], ref)


def test_loads_a_plain_classifier_checkpoint(tmp_path):
    """A trained classifier without GAIN (the inner head's weights right under
    ``head.``) loads into GAINHead's ``cls_head`` with no missing or unexpected key
    (load_from = a CAM checkpoint); GAIN's own checkpoints load unchanged."""
    from mmengine.runner import load_checkpoint

    from mmwsss.registry import MODELS
    gain = _classifier(seed=0)
    torch.manual_seed(1)
    plain = MODELS.build(dict(
        type='WSClassifier',
        data_preprocessor=dict(type='WSSSDataPreProcessor', mean=[0, 0, 0],
                               std=[1, 1, 1], size_divisor=8),
        backbone=_resnet(),
        head=dict(type='CAMHead', in_channels=64, num_classes=K,
                  num_extra_convs=1, extra_channels=16),
        test_cfg=dict(scales=(1.0, ), flip=False, restrict='none')))
    plain.init_weights()
    sd = plain.state_dict()
    assert any(k.startswith('head.classifier') for k in sd)
    result = gain.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in plain.head.state_dict().items():
        assert torch.equal(gain.head.cls_head.state_dict()[k], v), k
    x = torch.randn(2, 3, 32, 32)
    plain.eval(), gain.eval()
    with torch.no_grad():
        assert torch.allclose(
            plain.head.image_logits(plain.head(plain.extract_feat(x))),
            gain.head.image_logits(gain.head(gain.extract_feat(x))))
    # through MMEngine's loader (load_from), strict
    path = str(tmp_path / 'cam.pth')
    torch.save(dict(state_dict=sd), path)
    other = _classifier(seed=2)
    load_checkpoint(other, path, strict=True)
    assert torch.equal(other.head.cls_head.classifier.weight,
                       plain.head.classifier.weight)
    # a GAIN checkpoint round-trips as it is
    again = _classifier(seed=3)
    again.load_state_dict(gain.state_dict(), strict=True)
    assert torch.equal(again.head.cls_head.classifier.weight,
                       plain.head.classifier.weight)
