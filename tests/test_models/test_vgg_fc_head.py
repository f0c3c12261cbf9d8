"""VGGFCHead (VGG-16's fc6 / fc7 / fc8 as a WSSS head, GAIN's classifier), the
fc6 / fc7 converter and DeepLabVGG16(with_last_pool=False) (relu5_3)."""
import mmwsss  # noqa: F401  (compat shims before torchvision)
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from mmwsss.models.backbones import (DeepLabVGG16, VGGStateDictError,
                                     convert_vgg16_fc_state_dict,
                                     convert_vgg16_state_dict)
from mmwsss.models.heads import GAINHead, VGGFCHead
from mmwsss.structures import WSSSDataSample

K = 4
SMALL = dict(in_channels=8, fc_channels=16, pooled_size=2)


def _register():
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture(autouse=True)
def fresh_message_hub():
    """No training loop: GAINHead counts its own loss calls."""
    MessageHub.get_instance('test_vgg_fc_head_hub')
    yield


def _sample(label, shape):
    ds = WSSSDataSample(metainfo=dict(img_id='x', img_shape=shape,
                                      ori_shape=shape))
    ds.gt_label = torch.tensor(label, dtype=torch.float32)
    return ds


def _tv_layout(seed=0, c=8, fc=16, pooled=2, k_imagenet=5):
    """A random state dict in torchvision's vgg16 key layout (small shapes)."""
    g = torch.Generator().manual_seed(seed)
    state = {f'features.{i}.{p}': torch.zeros(2)
             for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
             for p in ('weight', 'bias')}
    state.update({
        'classifier.0.weight': torch.randn(fc, c * pooled * pooled, generator=g),
        'classifier.0.bias': torch.randn(fc, generator=g),
        'classifier.3.weight': torch.randn(fc, fc, generator=g),
        'classifier.3.bias': torch.randn(fc, generator=g),
        'classifier.6.weight': torch.randn(k_imagenet, fc, generator=g),
        'classifier.6.bias': torch.randn(k_imagenet, generator=g),
    })
    return state


# ---------------------------------------------------------------- backbone
def test_backbone_without_last_pool_ends_at_relu5_3():
    plain = DeepLabVGG16('plain', width=0.25, out_indices=(3, 4))
    relu53 = DeepLabVGG16('plain', width=0.25, out_indices=(3, 4),
                          with_last_pool=False)
    relu53.load_state_dict(plain.state_dict())  # same parameters, same names
    assert relu53.stage_strides == (2, 4, 8, 16, 16)
    assert len(relu53.features) == 30 and isinstance(relu53.features[-1],
                                                     torch.nn.ReLU)
    x = torch.rand(1, 3, 64, 80)
    p4, p5 = plain(x)
    r4, r5 = relu53(x)
    assert torch.equal(p4, r4) and r5.shape[-2:] == (4, 5)
    assert torch.equal(F.max_pool2d(r5, 2, 2), p5)  # pool5 of relu5_3
    # 'oaa' has no pool5: the option changes nothing
    assert len(DeepLabVGG16('oaa', with_last_pool=False).features) == 30
    assert len(DeepLabVGG16('largefov', with_last_pool=False).features) == 30


# --------------------------------------------------------------- converter
def test_fc_converter_layouts_and_errors():
    tv = _tv_layout()
    out = convert_vgg16_fc_state_dict(tv)
    assert list(out) == ['fc6.weight', 'fc6.bias', 'fc7.weight', 'fc7.bias']
    assert torch.equal(out['fc6.weight'], tv['classifier.0.weight'])
    assert torch.equal(out['fc7.bias'], tv['classifier.3.bias'])
    # wrapped + prefixed, as MMEngine checkpoints
    wrapped = {'state_dict': {f'module.{k}': v for k, v in tv.items()}}
    assert all(torch.equal(a, b) for a, b in zip(
        convert_vgg16_fc_state_dict(wrapped).values(), out.values()))
    # Caffe-style names, fc6 / fc7 as convolutions (7x7 -> flattened C, H, W)
    caffe = {'conv1_1.weight': torch.zeros(1), 'fc8_voc12.weight': torch.zeros(1),
             'fc6.weight': tv['classifier.0.weight'].reshape(16, 8, 2, 2),
             'fc6.bias': tv['classifier.0.bias'],
             'fc7.weight': tv['classifier.3.weight'][..., None, None],
             'fc7.bias': tv['classifier.3.bias']}
    for k, v in convert_vgg16_fc_state_dict(caffe).items():
        assert torch.equal(v, out[k]), k
    # a backbone-only file, an unknown key, a 3-d weight
    backbone_only = {k: v for k, v in tv.items() if k.startswith('features.')}
    with pytest.raises(VGGStateDictError, match='missing keys: fc6.weight'):
        convert_vgg16_fc_state_dict(backbone_only)
    with pytest.raises(VGGStateDictError, match="unexpected keys: foo.weight"):
        convert_vgg16_fc_state_dict(dict(tv, **{'foo.weight': torch.zeros(1)}))
    bad = dict(caffe, **{'fc7.weight': torch.zeros(16, 16, 1)})
    with pytest.raises(VGGStateDictError, match='fc7.weight has shape'):
        convert_vgg16_fc_state_dict(bad)
    # the backbone converter still ignores the classifier
    assert len(convert_vgg16_state_dict(
        {k: torch.zeros(1) for k in tv})) == 26


# -------------------------------------------------------------------- head
def test_head_shapes_logits_and_no_class_maps():
    head = VGGFCHead(num_classes=K, **SMALL)
    assert head.linear_classifier() is None and head.cam_requires_grad
    for size in ((12, 12), (21, 21), (5, 9)):  # relu5_3 sizes: any
        out = head((torch.rand(2, 8, *size), ))
        assert out.shape == (2, K)
        assert head.image_logits(out) is out
    f = torch.rand(2, 8, 10, 10)
    head.eval()
    assert torch.equal(head(f), head.outputs_from_pre_logits(head.pre_logits(f)))
    assert head.pre_logits((f, )) is f  # Grad-CAM's f is the input: relu5_3
    with pytest.raises(ValueError, match='wrap it'):
        head.class_maps(head(f))
    with pytest.raises(ValueError, match=r'\(N, K\) outputs'):
        head.image_logits(torch.rand(2, K, 3, 3))
    loss = head.loss_by_outputs(head(f), [_sample([1, 0, 0, 1], (80, 80)),
                                          _sample([0, 1, 0, 0], (80, 80))])
    assert set(loss) == {'loss_cls'} and loss['loss_cls'] > 0
    for bad in (dict(dropout_ratio=1.0), dict(fc_channels=0),
                dict(pooled_size=True)):
        with pytest.raises(ValueError):
            VGGFCHead(num_classes=K, **dict(SMALL, **bad))
    nopool = VGGFCHead(num_classes=K, with_pool5=False, **SMALL).eval()
    nopool.load_state_dict(head.state_dict())
    torch.testing.assert_close(nopool(F.max_pool2d(f, 2, 2)), head(f))


def test_default_init_is_torchvision_like():
    torch.manual_seed(0)
    head = VGGFCHead(num_classes=20)
    assert head.fc6.weight.shape == (4096, 25088)
    assert head.fc8.weight.shape == (20, 4096)
    for fc in (head.fc6, head.fc7, head.fc8):
        assert torch.count_nonzero(fc.bias) == 0
        assert abs(fc.weight.std().item() - 0.01) < 1e-3


def test_pretrained_fc6_fc7_from_a_torchvision_layout_file(tmp_path):
    tv = _tv_layout(seed=1)
    path = str(tmp_path / 'vgg16-fake.pth')
    torch.save(tv, path)
    torch.manual_seed(0)
    fresh_fc8 = VGGFCHead(num_classes=K, **SMALL).fc8.weight.clone()
    torch.manual_seed(0)
    head = VGGFCHead(num_classes=K, init_cfg=dict(type='Pretrained',
                                                  checkpoint=path), **SMALL)
    head.init_weights()
    assert torch.equal(head.fc6.weight, tv['classifier.0.weight'])
    assert torch.equal(head.fc6.bias, tv['classifier.0.bias'])
    assert torch.equal(head.fc7.weight, tv['classifier.3.weight'])
    assert torch.equal(head.fc7.bias, tv['classifier.3.bias'])
    assert torch.equal(head.fc8.weight, fresh_fc8)  # new: its own init
    # inside GAINHead, through the classifier's init_weights, with a prefix
    ckpt = str(tmp_path / 'prefixed.pth')
    torch.save({'state_dict': {f'head.cls_head.{k}': v
                               for k, v in convert_vgg16_fc_state_dict(
                                   tv).items()}}, ckpt)
    gain = GAINHead(cls_head=dict(
        type='VGGFCHead', num_classes=K, init_cfg=dict(
            type='Pretrained', checkpoint=ckpt, prefix='head.cls_head.'),
        **SMALL))
    gain.init_weights()
    assert torch.equal(gain.cls_head.fc7.weight, tv['classifier.3.weight'])
    # other shapes: a message with the shapes and what ImageNet weights need
    wrong = VGGFCHead(num_classes=K, in_channels=8, fc_channels=32,
                      pooled_size=2,
                      init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='fc_channels=4096'):
        wrong.init_weights()


def _reference_grad_cam(head, f, image, cls):
    """Grad-CAM of one (image, class) by a plain autograd call on one image."""
    f = f[image:image + 1].detach().requires_grad_()
    logit = head(f)[0, cls]
    (g, ) = torch.autograd.grad(logit, f)
    w = g.mean((2, 3), keepdim=True)
    return F.relu((w * f).sum(1))[0].detach()


def test_predict_maps_is_grad_cam_and_matches_gain():
    _register()
    torch.manual_seed(0)
    head = VGGFCHead(num_classes=K, **SMALL).eval()
    f = torch.rand(2, 8, 9, 11)
    with torch.no_grad():  # the classifier's predict runs under no_grad
        maps, logits = head.predict_maps((f, ))
    assert maps.shape == (2, K, 9, 11) and logits.shape == (2, K)
    assert not maps.requires_grad and not any(
        p.grad is not None for p in head.parameters())
    for b in range(2):
        for c in range(K):
            torch.testing.assert_close(maps[b, c],
                                       _reference_grad_cam(head, f, b, c))
    gain = GAINHead(cls_head=head).eval()
    assert gain.attention == 'autograd' and gain.cam_requires_grad
    with torch.no_grad():
        gmaps, glogits = gain.predict_maps((f, ))
    torch.testing.assert_close(gmaps, maps)
    torch.testing.assert_close(glogits, logits)


def test_gain_training_step_with_the_fc_head():
    """GAIN on VGGFCHead in a WSClassifier: the losses are finite, every weight
    (backbone, fc6-fc8) gets a gradient, the attention is at relu5_3 (stride 16)
    and nothing is written to .grad before the backward."""
    _register()
    from mmwsss.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='WSClassifier',
        data_preprocessor=dict(type='WSSSDataPreProcessor', mean=[0, 0, 0],
                               std=[1, 1, 1], size_divisor=16),
        backbone=dict(type='DeepLabVGG16', variant='plain', width=0.0625,
                      with_last_pool=False),
        head=dict(type='GAINHead', cls_head=dict(
            type='VGGFCHead', num_classes=K, in_channels=32, fc_channels=16,
            pooled_size=2)),
        test_cfg=dict(scales=(1.0, ), flip=False, restrict='none')))
    model.init_weights()
    model.train()
    inputs = torch.randn(2, 3, 64, 64)
    samples = [_sample([1, 0, 1, 0], (64, 64)), _sample([0, 0, 0, 1], (64, 64))]
    losses = model.loss(inputs, samples)
    assert set(losses) >= {'loss_cls', 'loss_am', 'am_mask_mean'}
    assert all(p.grad is None for p in model.parameters())
    assert torch.isfinite(losses['loss_am']) and losses['loss_am'] > 0
    (losses['loss_cls'] + losses['loss_am']).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.backbone.features[28].weight.grad.abs().sum() > 0
    model.eval()
    (ds, ) = model.predict(inputs[:1], [_sample([1, 0, 1, 0], (64, 64))])
    assert ds.pred_cams.data.shape == (K, 64, 64)


def test_backbone_and_head_are_torchvision_vgg16():
    """relu5_3 (``with_last_pool=False``) + VGGFCHead (pool5, adaptive 7x7 pooling,
    fc6-fc8) with torchvision's weights compute torchvision's ``vgg16`` (any input
    size: both pool adaptively)."""
    import torchvision
    torch.manual_seed(0)
    tv = torchvision.models.vgg16(weights=None).eval()
    state = tv.state_dict()
    backbone = DeepLabVGG16('plain', with_last_pool=False).eval()
    backbone.load_state_dict(convert_vgg16_state_dict(state))
    head = VGGFCHead(num_classes=1000).eval()
    head.load_state_dict(dict(convert_vgg16_fc_state_dict(state),
                              **{'fc8.weight': state['classifier.6.weight'],
                                 'fc8.bias': state['classifier.6.bias']}))
    x = torch.rand(2, 3, 48, 40)
    with torch.no_grad():
        (f, ) = backbone(x)
        assert f.shape[-2:] == (3, 2)  # relu5_3, stride 16
        torch.testing.assert_close(head(f), tv(x))
