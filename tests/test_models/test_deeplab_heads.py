"""LargeFOVHead (DeepLab-v1 LargeFOV) and DeepLabV2Head (DeepLab-v2 ASPP)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import mmwsss.models.decode_heads  # noqa: F401  (registers the heads)
from mmwsss.models.decode_heads import DeepLabV2Head, LargeFOVHead

C = 5  # classes


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    # These tiny convs are ~10x slower with several intra-op threads on a
    # shared CPU (oversubscription); restore the setting for other modules.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _feats(n=2, c=64, h=41, w=41, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g)


# --------------------------------------------------------------- LargeFOVHead
def test_largefov_output_shape_and_in_index():
    torch.manual_seed(0)
    head = LargeFOVHead(in_channels=64, num_classes=C)
    assert head((_feats(), )).shape == (2, C, 41, 41)
    # in_index picks one of several backbone outputs
    head = LargeFOVHead(in_channels=16, channels=32, num_classes=C, in_index=0)
    out = head([_feats(c=16, h=9, w=11), _feats(c=64, h=5, w=6)])
    assert out.shape == (2, C, 9, 11)
    with pytest.raises(ValueError):
        LargeFOVHead(in_channels=[8, 8], in_index=[0, 1], num_classes=C,
                     input_transform='multiple_select')


def test_largefov_structure():
    head = LargeFOVHead(in_channels=64, num_classes=C)
    assert isinstance(head.pool5a, nn.AvgPool2d)
    assert (head.pool5a.kernel_size, head.pool5a.stride,
            head.pool5a.padding) == (3, 1, 1)
    assert head.pool5a.count_include_pad  # Caffe AVE: always / 9
    fc6, fc7, fc8 = head.fc6, head.fc7, head.conv_seg
    assert (fc6.in_channels, fc6.out_channels) == (64, 1024)
    assert fc6.kernel_size == (3, 3) and fc6.dilation == (12, 12)
    assert fc6.padding == (12, 12) and fc6.stride == (1, 1)
    assert (fc7.in_channels, fc7.out_channels) == (1024, 1024)
    assert fc7.kernel_size == (1, 1) and fc7.padding == (0, 0)
    assert (fc8.in_channels, fc8.out_channels) == (1024, C)
    assert fc8.kernel_size == (1, 1)
    assert all(m.bias is not None for m in (fc6, fc7, fc8))  # no norm
    assert head.norm6 is None and head.norm7 is None
    assert isinstance(head.relu6, nn.ReLU) and isinstance(head.relu7, nn.ReLU)
    drops = [m for m in head.modules() if isinstance(m, nn.Dropout2d)]
    assert len(drops) == 2 and all(d.p == 0.5 for d in drops)
    assert head.drop7 is head.dropout and head.drop6 is not head.dropout
    assert sorted(n for n, _ in head.named_parameters()) == sorted([
        'fc6.weight', 'fc6.bias', 'fc7.weight', 'fc7.bias', 'conv_seg.weight',
        'conv_seg.bias'
    ])

    head = LargeFOVHead(in_channels=64, channels=256, num_classes=C,
                        dilation=6, avg_pool=False)
    assert head.pool5a is None
    assert head.fc6.dilation == (6, 6) and head.fc6.padding == (6, 6)
    assert head.fc6.out_channels == 256 and head.fc7.out_channels == 256
    assert head.conv_seg.in_channels == 256

    head = LargeFOVHead(in_channels=64, channels=32, num_classes=C,
                        dropout_ratio=0)
    assert head.drop6 is None and head.drop7 is None


def _largefov_manual(head, x, train):
    """fc6 -> ReLU -> drop -> fc7 -> ReLU -> drop -> fc8, written out."""
    y = F.avg_pool2d(x, 3, 1, 1) if head.pool5a is not None else x
    y = F.relu(F.conv2d(y, head.fc6.weight, head.fc6.bias, padding=12,
                        dilation=12))
    y = F.dropout2d(y, 0.5, train)
    y = F.relu(F.conv2d(y, head.fc7.weight, head.fc7.bias))
    y = F.dropout2d(y, 0.5, train)
    return F.conv2d(y, head.conv_seg.weight, head.conv_seg.bias)


@pytest.mark.parametrize('avg_pool', [True, False])
def test_largefov_forward_matches_layer_sequence(avg_pool):
    torch.manual_seed(0)
    head = LargeFOVHead(in_channels=16, channels=32, num_classes=C,
                        avg_pool=avg_pool)
    x = _feats(c=16, h=15, w=17)
    head.eval()
    with torch.no_grad():
        assert torch.allclose(head([x]), _largefov_manual(head, x, False),
                              atol=1e-5)
    # training: same dropout masks (same RNG draws in the same order)
    head.train()
    with torch.no_grad():
        torch.manual_seed(3)
        out = head([x])
        torch.manual_seed(3)
        ref = _largefov_manual(head, x, True)
        torch.manual_seed(4)
        other = head([x])
    assert torch.allclose(out, ref, atol=1e-5)
    assert not torch.allclose(out, other)  # dropout active in train mode


def test_largefov_norm_cfg_and_init():
    head = LargeFOVHead(in_channels=16, channels=32, num_classes=C,
                        norm_cfg=dict(type='BN'))
    assert isinstance(head.norm6, nn.BatchNorm2d)
    assert isinstance(head.norm7, nn.BatchNorm2d)
    assert head.fc6.bias is None and head.fc7.bias is None
    assert head([_feats(c=16, h=7, w=7)]).shape == (2, C, 7, 7)

    torch.manual_seed(0)
    head = LargeFOVHead(in_channels=64, num_classes=21)
    w8 = head.conv_seg.weight
    assert abs(w8.std().item() - 0.01) < 0.001
    assert abs(w8.mean().item()) < 0.001
    assert torch.all(head.conv_seg.bias == 0)
    # fc6 / fc7: Kaiming normal, fan_out, ReLU
    std6 = math.sqrt(2 / (1024 * 9))
    assert abs(head.fc6.weight.std().item() - std6) < 0.05 * std6
    assert torch.all(head.fc6.bias == 0) and torch.all(head.fc7.bias == 0)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    head.init_weights()  # default init_cfg=None: keeps the construction init
    for k, v in head.state_dict().items():
        assert torch.equal(v, before[k]), k
    # an mmseg-style init_cfg is applied on top by init_weights
    head = LargeFOVHead(in_channels=16, channels=32, num_classes=C,
                        init_cfg=dict(type='Constant', val=0.5, bias=0.25,
                                      override=dict(name='conv_seg')))
    head.init_weights()
    assert torch.all(head.conv_seg.weight == 0.5)
    assert torch.all(head.conv_seg.bias == 0.25)


# -------------------------------------------------------------- DeepLabV2Head
def test_deeplabv2_structure_and_no_conv_seg():
    head = DeepLabV2Head(in_channels=64, num_classes=C)
    assert not hasattr(head, 'conv_seg')
    assert head.dropout is None
    assert head.channels == 64
    assert len(head.aspp) == 4
    for conv, d in zip(head.aspp, (6, 12, 18, 24)):
        assert isinstance(conv, nn.Conv2d)
        assert (conv.in_channels, conv.out_channels) == (64, C)
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1)
        assert conv.dilation == (d, d) and conv.padding == (d, d)
        assert conv.bias is not None
    names = [n for n, _ in head.named_parameters()]
    assert names == [f'aspp.{i}.{p}' for i in range(4)
                     for p in ('weight', 'bias')]
    assert not any('conv_seg' in k for k in head.state_dict())
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.ReLU))
                   for m in head.modules())
    # init N(0, 0.01), bias 0; init_weights (default init_cfg) keeps it
    w = torch.cat([c.weight.flatten() for c in head.aspp])
    assert abs(w.std().item() - 0.01) < 0.001
    assert all(torch.all(c.bias == 0) for c in head.aspp)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    head.init_weights()
    for k, v in head.state_dict().items():
        assert torch.equal(v, before[k]), k
    head = DeepLabV2Head(in_channels=8, num_classes=C,
                         init_cfg=dict(type='Constant', val=0.5, bias=0.25,
                                       layer='Conv2d'))
    head.init_weights()
    assert all(torch.all(c.weight == 0.5) for c in head.aspp)
    assert all(torch.all(c.bias == 0.25) for c in head.aspp)


def test_deeplabv2_args():
    # ResNet "LargeFOV" = one rate-12 branch
    head = DeepLabV2Head(in_channels=64, num_classes=C, dilations=(12, ))
    assert len(head.aspp) == 1 and head.aspp[0].dilation == (12, 12)
    assert head([_feats()]).shape == (2, C, 41, 41)
    with pytest.warns(UserWarning, match='ignored'):
        DeepLabV2Head(in_channels=64, channels=512, num_classes=C)
    with pytest.raises(ValueError):
        DeepLabV2Head(in_channels=64, num_classes=C, norm_cfg=dict(type='BN'))
    with pytest.raises(ValueError):
        DeepLabV2Head(in_channels=64, num_classes=C, dilations=())
    # resize_concat: channels add up
    head = DeepLabV2Head(in_channels=[8, 16], in_index=[0, 1], num_classes=C,
                         input_transform='resize_concat')
    assert head.aspp[0].in_channels == 24
    assert head([_feats(c=8, h=9, w=9), _feats(c=16, h=5, w=5)]).shape == \
        (2, C, 9, 9)


@pytest.mark.parametrize('dropout_ratio', [0., 0.5])
def test_deeplabv2_is_sum_of_branches(dropout_ratio):
    torch.manual_seed(0)
    head = DeepLabV2Head(in_channels=64, num_classes=C,
                         dropout_ratio=dropout_ratio)
    for conv in head.aspp:  # non-zero biases, so they are checked too
        nn.init.normal_(conv.bias)
    x = _feats()
    head.eval()
    with torch.no_grad():
        out = head([x])
        ref = sum(
            F.conv2d(x, conv.weight, conv.bias, padding=d, dilation=d)
            for conv, d in zip(head.aspp, (6, 12, 18, 24)))
    assert out.shape == (2, C, 41, 41)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(head.cls_seg(head._forward_feature([x])), out)


# ------------------------------------------------------- EncoderDecoder, e2e
def _segmentor(head, backbone):
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    from mmwsss.registry import MODELS
    if backbone == 'vgg':
        backbone = dict(type='DeepLabVGG16', variant='largefov', width=0.125)
    else:
        backbone = dict(
            type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
            out_indices=(3, ), strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4))
    head = dict(
        in_channels=64, num_classes=C,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=1.0),
        ignore_index=255, **head)
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True,
                pad_val=0,
                seg_pad_val=255,
                size=(65, 65)),
            backbone=backbone,
            decode_head=head,
            train_cfg=ConfigDict(),
            test_cfg=ConfigDict(mode='whole')))
    model.init_weights()
    return model


def _batch(seed=0, ori_shape=None):
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(2):
        # learnable: quadrants of classes, each with its own colour, + noise
        rows = torch.arange(65).div(33, rounding_mode='floor')
        label = (rows[:, None] * 2 + rows[None, :] + i) % C
        colours = torch.randint(0, 256, (C, 3), generator=g).float()
        img = colours[label].permute(2, 0, 1)
        img = img + 30 * torch.randn(3, 65, 65, generator=g)
        inputs.append(img.clamp(0, 255).to(torch.uint8))
        label = label[None].clone()
        label[:, :5] = 255  # some ignored pixels
        ds = SegDataSample(metainfo=dict(
            img_shape=(65, 65), ori_shape=ori_shape or (65, 65)))
        ds.gt_sem_seg = PixelData(data=label)
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


HEADS = {
    'largefov-vgg': (dict(type='LargeFOVHead', channels=64), 'vgg'),
    'deeplabv2-resnet': (dict(type='DeepLabV2Head'), 'resnet'),
    'resnet-largefov': (dict(type='DeepLabV2Head', dilations=(12, )), 'resnet'),
}


@pytest.mark.parametrize('name', sorted(HEADS))
def test_encoder_decoder_end_to_end(name):
    head_cfg, backbone = HEADS[name]
    model = _segmentor(head_cfg, backbone)
    assert type(model.decode_head).__name__ == head_cfg['type']
    data = model.data_preprocessor(_batch(), True)

    # loss + backward: every parameter gets a gradient (DDP-safe)
    model.train()
    losses = model(**data, mode='loss')
    assert 'decode.loss_ce' in losses and 'decode.acc_seg' in losses
    loss = losses['decode.loss_ce']
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert not missing, missing

    # a few SGD steps on the fixed batch reduce the loss
    def train_mode_loss():
        torch.manual_seed(123)  # same dropout masks at both measurements
        with torch.no_grad():
            return model(**data, mode='loss')['decode.loss_ce'].item()

    loss0 = train_mode_loss()
    optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(10):
        optim.zero_grad()
        model(**data, mode='loss')['decode.loss_ce'].backward()
        optim.step()
    loss1 = train_mode_loss()
    assert loss1 < loss0 - 5e-3, (loss0, loss1)

    # eval: deterministic (dropout off), prediction at the original size
    model.eval()
    test_data = model.data_preprocessor(_batch(1, ori_shape=(97, 130)), False)
    with torch.no_grad():
        t1 = model(test_data['inputs'], mode='tensor')
        t2 = model(test_data['inputs'], mode='tensor')
        assert t1.shape == (2, C, 9, 9)  # OS8: 65 -> 9
        assert torch.equal(t1, t2)
        preds = model(**test_data, mode='predict')
    assert len(preds) == 2
    for p in preds:
        assert isinstance(p, SegDataSample)
        assert p.pred_sem_seg.data.shape == (1, 97, 130)
        assert p.seg_logits.data.shape == (C, 97, 130)
        assert int(p.pred_sem_seg.data.max()) < C
