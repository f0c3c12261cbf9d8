import importlib.util
import os.path as osp
import re
import subprocess
from collections import OrderedDict

import mmwsss  # noqa: F401  (compat shims before torchvision)
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import BaseModule

from mmwsss.models.backbones.deeplab_resnet import DeepLabResNet
from mmwsss.models.backbones.resnet_weights import (
    ResNetStateDictError, check_resnet_state_dict,
    convert_deeplab_resnet_state_dict, extract_deeplab_aspp,
    infer_resnet_depth, infer_resnet_stage_blocks)
from mmwsss.utils.cli import ToolError
from tests.conftest import REPO, run_env

TOOL = 'tools/model_converters/deeplab_resnet_to_mmwsss.py'
# A narrow ResNet-50 (stage channels 64/128/256/512) for the fast tests.
NARROW = dict(depth=50, stem_channels=16, base_channels=16)


# ----------------------------------------------------------------- helpers
def _to_kazuto(name):
    """mmseg ResNet name -> kazuto1011/deeplab-pytorch DeepLabV2 name."""
    m = re.match(r'(conv1|bn1)\.(\w+)$', name)
    if m:
        return ('layer1.conv1.conv.weight' if m.group(1) == 'conv1' else
                f'layer1.conv1.bn.{m.group(2)}')
    m = re.match(r'layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.\d)\.(\w+)$',
                 name)
    stage, block, unit, param = m.groups()
    head = f'layer{int(stage) + 1}.block{int(block) + 1}.'
    if unit.startswith('downsample'):
        return head + ('shortcut.conv.weight' if unit.endswith('0') else
                       f'shortcut.bn.{param}')
    k = int(unit[-1])
    sub = ('reduce', 'conv3x3', 'increase')[k - 1]
    return head + (f'{sub}.conv.weight' if unit.startswith('conv') else
                   f'{sub}.bn.{param}')


def _to_rulixiang(name):
    """kazuto1011 name -> rulixiang/deeplab-pytorch DeepLabV2_ResNet101 name."""
    name = name.replace('.bn.', '.batch_norm.')
    name = re.sub(r'\.block(\d+)\.', lambda m: f'.{int(m.group(1)) - 1}.', name)
    for old, new in (('reduce', 'conv1'), ('conv3x3', 'conv2'),
                     ('increase', 'conv3')):
        name = name.replace(f'.{old}.', f'.{new}.')
    return name


def _randomize(state, seed=0):
    """Random values everywhere (BN statistics included), same shapes."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, v in state.items():
        if k.endswith('num_batches_tracked'):
            out[k] = torch.tensor(7, dtype=torch.long)
        elif k.endswith('running_var'):
            out[k] = 0.5 + 1.5 * torch.rand(v.shape, generator=g)
        elif k.endswith('running_mean') or k.endswith('bias'):
            out[k] = 0.1 * torch.randn(v.shape, generator=g)
        elif v.dim() == 1:  # BN weight
            out[k] = 0.5 + torch.rand(v.shape, generator=g)
        else:  # conv weight, fan-in scaled
            fan_in = v[0].numel()
            out[k] = torch.randn(v.shape, generator=g) * (1.0 / fan_in)**0.5
    return out


def _kazuto_state(mmseg_state, prefix=''):
    """kazuto1011-named copy of an mmseg state dict, as converted from Caffe:
    no num_batches_tracked."""
    return OrderedDict((prefix + _to_kazuto(k), v)
                       for k, v in mmseg_state.items()
                       if not k.endswith('num_batches_tracked'))


def _assert_state_equal(model, state):
    sd = model.state_dict()
    assert sorted(sd) == sorted(state)
    for k, v in state.items():
        if not k.endswith('num_batches_tracked'):
            assert torch.equal(sd[k], v), k


@pytest.fixture(scope='module')
def narrow_state():
    return _randomize(DeepLabResNet(**NARROW).state_dict(), seed=1)


# A minimal re-implementation of kazuto1011's DeepLabV2 (libs/models/deeplabv2.py,
# resnet.py) as the reference for names and forward semantics.
class _ConvBnReLU(nn.Sequential):

    def __init__(self, cin, cout, k, stride, pad, dil, relu=True):
        super().__init__()
        self.add_module('conv', nn.Conv2d(cin, cout, k, stride, pad, dil,
                                          bias=False))
        self.add_module('bn', nn.BatchNorm2d(cout))
        if relu:
            self.add_module('relu', nn.ReLU())


class _Bottleneck(nn.Module):

    def __init__(self, cin, cout, stride, dilation, downsample):
        super().__init__()
        mid = cout // 4
        self.reduce = _ConvBnReLU(cin, mid, 1, stride, 0, 1)
        self.conv3x3 = _ConvBnReLU(mid, mid, 3, 1, dilation, dilation)
        self.increase = _ConvBnReLU(mid, cout, 1, 1, 0, 1, relu=False)
        self.shortcut = (_ConvBnReLU(cin, cout, 1, stride, 0, 1, relu=False)
                         if downsample else nn.Identity())

    def forward(self, x):
        h = self.increase(self.conv3x3(self.reduce(x)))
        return F.relu(h + self.shortcut(x))


class _ASPP(nn.Module):

    def __init__(self, cin, cout, rates):
        super().__init__()
        for i, r in enumerate(rates):
            self.add_module(f'c{i}', nn.Conv2d(cin, cout, 3, 1, r, r))

    def forward(self, x):
        return sum(c(x) for c in self.children())


def _kazuto_deeplabv2(n_blocks, ch0=64, n_classes=3, rates=(6, 12, 18, 24)):
    ch = [ch0 * 2**p for p in range(6)]

    def layer(n, cin, cout, stride, dil):
        return nn.Sequential(OrderedDict(
            (f'block{i + 1}',
             _Bottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1,
                         dil, i == 0)) for i in range(n)))

    return nn.Sequential(OrderedDict(
        layer1=nn.Sequential(OrderedDict(
            conv1=_ConvBnReLU(3, ch[0], 7, 2, 3, 1),
            pool=nn.MaxPool2d(3, 2, 1, ceil_mode=True))),
        layer2=layer(n_blocks[0], ch[0], ch[2], 1, 1),
        layer3=layer(n_blocks[1], ch[2], ch[3], 2, 1),
        layer4=layer(n_blocks[2], ch[3], ch[4], 1, 2),
        layer5=layer(n_blocks[3], ch[4], ch[5], 1, 4),
        aspp=_ASPP(ch[5], n_classes, rates)))


# ---------------------------------------------------------------- structure
def test_output_stride_and_caffe_style():
    model = DeepLabResNet(**NARROW).eval()
    assert model.out_indices == (3, ) and model.out_channels == (512, )
    assert model.stage_channels == (64, 128, 256, 512)
    with torch.no_grad():
        (out, ) = model(torch.rand(1, 3, 65, 65))
        assert out.shape == (1, 512, 9, 9)
        (out, ) = model(torch.rand(1, 3, 321, 321))
        assert out.shape == (1, 512, 41, 41)
    # caffe style: the stride is in the first 1x1 conv of layer2's first block
    assert model.layer2[0].conv1.stride == (2, 2)
    assert model.layer2[0].conv2.stride == (1, 1)
    assert model.layer2[0].downsample[0].stride == (2, 2)
    assert all(b.conv1.stride == (1, 1) and b.conv2.stride == (1, 1)
               for b in (*model.layer3, *model.layer4))
    # no contraction: every block of a dilated stage has the stage dilation
    for layer, d in ((model.layer3, 2), (model.layer4, 4)):
        assert all(b.conv2.dilation == (d, d) and b.conv2.padding == (d, d)
                   for b in layer)
    assert model.conv1.kernel_size == (7, 7) and not model.deep_stem

    outs = DeepLabResNet(**NARROW, out_indices=(0, 1, 2, 3)).eval()(
        torch.rand(1, 3, 65, 65))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 17, 17),
                                                  (128, 9, 9),
                                                  (256, 9, 9),
                                                  (512, 9, 9)]
    assert DeepLabResNet(**NARROW, out_indices=2).out_channels == (256, )
    with pytest.raises(ValueError, match='style'):
        DeepLabResNet(**NARROW, style='tf')


def test_stem_pool_rounding():
    """floor (mmseg) vs ceil (kazuto1011) stem pool: same for H = 1, 2 mod 4."""
    x = torch.rand(1, 3, 66, 66)
    floor = DeepLabResNet(**NARROW, out_indices=(0, )).eval()
    ceil = DeepLabResNet(
        **NARROW, out_indices=(0, ), stem_pool_ceil_mode=True).eval()
    ceil.load_state_dict(floor.state_dict())
    with torch.no_grad():
        for h in (65, 66, 321, 513):
            a = floor.maxpool(torch.rand(1, 1, (h - 1) // 2 + 1, 7))
            b = ceil.maxpool(torch.rand(1, 1, (h - 1) // 2 + 1, 7))
            assert a.shape == b.shape, h
        torch.testing.assert_close(floor(x)[0], ceil(x)[0])
        for h, (n_floor, n_ceil) in ((64, (16, 17)), (224, (56, 57))):
            n = (h - 1) // 2 + 1
            assert floor.maxpool(torch.rand(1, 1, n, n)).shape[-1] == n_floor
            assert ceil.maxpool(torch.rand(1, 1, n, n)).shape[-1] == n_ceil


def test_frozen_bn():
    model = DeepLabResNet(**NARROW)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 1 + 16 * 3 + 4
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters()
               if 'conv' in n or 'downsample.0' in n)
    assert model.train() is model
    assert model.training and not any(m.training for m in bns)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(torch.rand(2, 3, 33, 33))[0].sum().backward()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # running stats untouched
    # plain mmseg behaviour on request
    free = DeepLabResNet(
        **NARROW, norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False).train()
    assert free.bn1.training and free.bn1.weight.requires_grad


def test_resnet101_default():
    model = DeepLabResNet()
    assert model.depth == 101 and model.stage_blocks == (3, 4, 23, 3)
    assert model.style == 'caffe' and model.norm_eval
    assert model.strides == (1, 2, 1, 1) and model.dilations == (1, 1, 2, 4)
    # = torchvision resnet101 without its fc (44,549,160 - 2,049,000)
    assert sum(p.numel() for p in model.parameters()) == 42500160
    assert model.out_channels == (2048, )
    sd = model.state_dict()
    assert infer_resnet_depth(sd) == 101
    assert infer_resnet_stage_blocks(sd) == (3, 4, 23, 3)

    # a ResNet-50 file into a ResNet-101: the missing blocks are named
    r50 = DeepLabResNet(depth=50).state_dict()
    with pytest.raises(ResNetStateDictError) as e:
        check_resnet_state_dict(convert_deeplab_resnet_state_dict(r50), sd)
    msg = str(e.value)
    assert 'missing keys in layer3.6-22' in msg
    assert '(3, 4, 6, 3) = ResNet-50' in msg
    assert '(3, 4, 23, 3) = ResNet-101' in msg


def test_forward_matches_kazuto_reference():
    """Converted kazuto1011 weights: same features (caffe style, dilations)."""
    ref = _kazuto_deeplabv2((3, 4, 6, 3), 16)
    ref.load_state_dict(_randomize(ref.state_dict(), seed=3))
    body = nn.Sequential(*list(ref.children())[:-1]).eval()
    state = convert_deeplab_resnet_state_dict(ref.state_dict())
    x65, x64 = torch.rand(1, 3, 65, 65), torch.rand(1, 3, 64, 64)

    def same(model, x):
        model.load_state_dict(state)
        with torch.no_grad():
            out, expected = model.eval()(x)[0], body(x)
        return out.shape == expected.shape and torch.allclose(
            out, expected, atol=1e-4 * expected.abs().max().item())

    assert same(DeepLabResNet(**NARROW), x65)
    assert not same(DeepLabResNet(**NARROW), x64)  # 8x8 vs 9x9 (ceil pool)
    assert same(DeepLabResNet(**NARROW, stem_pool_ceil_mode=True), x64)
    assert not same(DeepLabResNet(**NARROW, style='pytorch'), x65)
    assert not same(DeepLabResNet(**NARROW, contract_dilation=True), x65)


# --------------------------------------------------------------- conversion
def test_kazuto_round_trip(narrow_state):
    kazuto = _kazuto_state(narrow_state)
    # the test's inverse mapping gives exactly kazuto1011's names
    ref_names = {k for k in _kazuto_deeplabv2((3, 4, 6, 3), 16).state_dict()
                 if not k.startswith('aspp.')
                 and not k.endswith('num_batches_tracked')}
    assert set(kazuto) == ref_names
    assert 'layer2.block1.reduce.conv.weight' in kazuto
    assert 'layer5.block1.shortcut.bn.running_var' in kazuto

    aspp = {f'aspp.c{i}.{p}': torch.randn(3) for i in range(4)
            for p in ('weight', 'bias')}
    for prefix in ('', 'base.', 'module.', 'module.base.', 'scale.'):
        sd = {prefix + k: v for k, v in {**kazuto, **aspp}.items()}
        out = convert_deeplab_resnet_state_dict({'state_dict': sd})
        assert list(out) == list(narrow_state)  # network order
        for k, v in out.items():
            if k.endswith('num_batches_tracked'):
                assert v.item() == 0 and v.dtype == torch.long  # filled in
            else:
                assert torch.equal(v, narrow_state[k]), k
        head = extract_deeplab_aspp(sd)
        assert list(head) == [f'decode_head.aspp.{i}.{p}' for i in range(4)
                              for p in ('weight', 'bias')]
        assert torch.equal(head['decode_head.aspp.2.bias'], aspp['aspp.c2.bias'])

    model = DeepLabResNet(**NARROW)
    model.load_state_dict(convert_deeplab_resnet_state_dict(kazuto))
    _assert_state_equal(model, narrow_state)

    # old kazuto1011 names: `proj` shortcut, `aspp.stages.c{i}`
    old = {k.replace('.shortcut.', '.proj.'): v for k, v in kazuto.items()}
    out = convert_deeplab_resnet_state_dict(old)
    assert torch.equal(out['layer1.0.downsample.0.weight'],
                       narrow_state['layer1.0.downsample.0.weight'])
    head = extract_deeplab_aspp(
        {'scale.aspp.stages.c0.weight': torch.ones(1),
         'scale.aspp.stages.c0.bias': torch.zeros(1)}, prefix='')
    assert list(head) == ['aspp.0.weight', 'aspp.0.bias']


def test_rulixiang_and_torchvision_names(narrow_state):
    rlx = {_to_rulixiang(k): v for k, v in _kazuto_state(narrow_state).items()}
    assert 'layer2.0.conv1.conv.weight' in rlx
    assert 'layer1.conv1.batch_norm.running_mean' in rlx
    assert 'layer3.0.shortcut.batch_norm.weight' in rlx
    rlx['aspp.c0.weight'] = torch.zeros(1)
    out = convert_deeplab_resnet_state_dict(rlx)
    for k, v in out.items():
        if not k.endswith('num_batches_tracked'):
            assert torch.equal(v, narrow_state[k]), k

    # mmseg / torchvision names pass through (prefixes stripped, fc dropped)
    for prefix in ('', 'backbone.', 'module.'):
        sd = {prefix + k: v for k, v in narrow_state.items()}
        sd[prefix + 'fc.weight'] = torch.zeros(2)
        out = convert_deeplab_resnet_state_dict(sd)
        assert list(out) == list(narrow_state)
        assert all(torch.equal(out[k], v) for k, v in narrow_state.items())
    # a whole mmseg segmentor checkpoint: heads dropped
    seg = {'backbone.' + k: v for k, v in narrow_state.items()}
    seg['decode_head.aspp.0.weight'] = torch.zeros(1)
    seg['auxiliary_head.conv_seg.weight'] = torch.zeros(1)
    assert list(convert_deeplab_resnet_state_dict(seg)) == list(narrow_state)

    import torchvision
    tv = torchvision.models.resnet50(weights=None).state_dict()
    out = convert_deeplab_resnet_state_dict(tv)
    assert set(out) == set(tv) - {'fc.weight', 'fc.bias'}
    assert all(torch.equal(out[k], tv[k]) for k in out)
    model = DeepLabResNet(depth=50)
    model.load_state_dict(out, strict=True)


def test_convert_errors(narrow_state):
    kazuto = _kazuto_state(narrow_state)
    with pytest.raises(ResNetStateDictError) as e:
        convert_deeplab_resnet_state_dict(
            {**kazuto, 'layer2.block1.reduce.conv.bias': torch.zeros(1),
             'encoder.weight': torch.zeros(1)})
    msg = str(e.value)
    assert isinstance(e.value, KeyError)
    assert 'unexpected keys' in msg and 'encoder.weight' in msg
    assert 'layer2.block1.reduce.conv.bias' in msg
    assert 'kazuto1011' in msg and 'torchvision' in msg  # expected formats
    with pytest.raises(KeyError, match='ResNetV1c'):
        convert_deeplab_resnet_state_dict({'stem.0.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='duplicate keys'):
        convert_deeplab_resnet_state_dict(
            {**kazuto, 'conv1.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='no backbone keys'):
        convert_deeplab_resnet_state_dict({'fc.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='block0'):  # kazuto blocks are 1-based
        convert_deeplab_resnet_state_dict(
            {'layer2.block0.reduce.conv.weight': torch.zeros(1)})
    with pytest.raises(TypeError):
        convert_deeplab_resnet_state_dict([1, 2])
    # ASPP of another layout (DeepLab-v3), incomplete or non-contiguous ASPP
    with pytest.raises(KeyError, match='unknown layout'):
        extract_deeplab_aspp({'aspp.stages.c0.conv.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='missing: c0.bias'):
        extract_deeplab_aspp({'aspp.c0.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='not 0..n-1'):
        extract_deeplab_aspp({'aspp.c1.weight': torch.zeros(1),
                              'aspp.c1.bias': torch.zeros(1)})
    assert extract_deeplab_aspp(narrow_state) == {}

    # shapes only: ValueError
    other = DeepLabResNet(depth=50, stem_channels=32, base_channels=16)
    with pytest.raises(ValueError, match='shape mismatches: conv1.weight'):
        check_resnet_state_dict(narrow_state, other.state_dict())


# ---------------------------------------------------------- Pretrained init
def test_pretrained_init_cfg(tmp_path, narrow_state):
    path = tmp_path / 'kazuto_r50.pth'
    torch.save(_kazuto_state(narrow_state, 'base.'), path)
    model = DeepLabResNet(
        **NARROW, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    _assert_state_equal(model, narrow_state)
    assert not hasattr(model, '_params_init_info')

    # mmseg names under a prefix, wrapped, inside a parent model
    full = tmp_path / 'model.pth'
    torch.save({'state_dict': {'backbone.' + k: v
                               for k, v in narrow_state.items()},
                'meta': {}}, full)

    class Parent(BaseModule):  # the backbone inside a model, as in a Runner

        def __init__(self):
            super().__init__()
            self.backbone = DeepLabResNet(**NARROW, init_cfg=dict(
                type='Pretrained', checkpoint=str(full), prefix='backbone.'))

    parent = Parent()
    parent.init_weights()
    _assert_state_equal(parent.backbone, narrow_state)
    assert not hasattr(parent.backbone, '_params_init_info')
    with pytest.raises(KeyError, match='prefix'):
        DeepLabResNet(**NARROW, init_cfg=dict(
            type='Pretrained', checkpoint=str(full),
            prefix='neck.')).init_weights()

    # other init_cfg entries run first, Pretrained wins; `pretrained=` works too
    model = DeepLabResNet(**NARROW, init_cfg=[
        dict(type='Constant', layer='Conv2d', val=0.5),
        dict(type='Pretrained', checkpoint=str(path))])
    model.init_weights()
    _assert_state_equal(model, narrow_state)
    with pytest.warns(UserWarning, match='pretrained'):
        model = DeepLabResNet(**NARROW, pretrained=str(path))
    model.init_weights()
    _assert_state_equal(model, narrow_state)

    # without init_cfg: mmseg's ResNet init (zero last BN of every block)
    model = DeepLabResNet(**NARROW)
    model.init_weights()
    assert torch.count_nonzero(model.layer1[0].bn3.weight) == 0


def test_pretrained_errors(tmp_path, narrow_state):
    kazuto = _kazuto_state(narrow_state)
    bad = tmp_path / 'bad.pth'
    torch.save({k: v for k, v in kazuto.items()
                if not k.startswith('layer5.block3.')}, bad)
    model = DeepLabResNet(
        **NARROW, init_cfg=dict(type='Pretrained', checkpoint=str(bad)))
    with pytest.raises(KeyError, match=r'bad\.pth.*missing keys in layer4\.2'):
        model.init_weights()
    odd = tmp_path / 'odd.pth'
    torch.save({**kazuto, 'aux.weight': torch.zeros(1)}, odd)
    with pytest.raises(KeyError, match=r'odd\.pth.*aux\.weight'):
        DeepLabResNet(**NARROW, init_cfg=dict(
            type='Pretrained', checkpoint=str(odd))).init_weights()
    ok = tmp_path / 'ok.pth'
    torch.save(kazuto, ok)
    wide = DeepLabResNet(depth=50, stem_channels=16, base_channels=32,
                         init_cfg=dict(type='Pretrained', checkpoint=str(ok)))
    with pytest.raises(ValueError, match=r'ok\.pth.*shape mismatches'):
        wide.init_weights()


def test_registry_build():
    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model = MODELS.build(dict(type='DeepLabResNet', **NARROW))
    assert isinstance(model, DeepLabResNet)
    from mmseg.registry import MODELS as MMSEG_MODELS
    assert isinstance(
        MMSEG_MODELS.build(dict(type='mmwsss.DeepLabResNet', **NARROW)),
        DeepLabResNet)


# ---------------------------------------------------------- converter tool
def _segmentor(num_classes):
    from mmwsss.models.decode_heads.deeplabv2_head import \
        DeepLabV2Head  # noqa: F401  (registers the head)
    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor',
                                   mean=[104.008, 116.669, 122.675],
                                   std=[1.0, 1.0, 1.0]),
            backbone=dict(type='DeepLabResNet', depth=50),
            decode_head=dict(type='DeepLabV2Head', in_channels=2048,
                             num_classes=num_classes),
            train_cfg=ConfigDict(),
            test_cfg=ConfigDict(mode='whole')))


def test_converter_tool(tmp_path, python_exe):
    from mmengine.runner import load_checkpoint

    torch.manual_seed(0)
    ref = _kazuto_deeplabv2((3, 4, 6, 3), 64, n_classes=3)
    ref.load_state_dict(_randomize(ref.state_dict(), seed=2))
    ref.eval()
    src = tmp_path / 'deeplabv2_resnet50_msc.pth'
    # kazuto1011's main.py saves the MSC model: `base.` prefix
    torch.save({'base.' + k: v for k, v in ref.state_dict().items()}, src)
    dst = tmp_path / 'out' / 'deeplabv2_r50_mmwsss.pth'
    p = subprocess.run([python_exe, TOOL, str(src), str(dst)], cwd=REPO,
                       env=run_env(), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'ResNet-50 backbone + 4-branch ASPP (3 classes)' in p.stdout
    ckpt = torch.load(dst, map_location='cpu')
    assert ckpt['meta']['depth'] == 50 and ckpt['meta']['num_classes'] == 3
    assert ckpt['meta']['source'] == src.name
    assert ckpt['meta']['source_format'] == 'deeplab'

    seg = _segmentor(num_classes=3).eval()
    assert sorted(ckpt['state_dict']) == sorted(seg.state_dict())
    load_checkpoint(seg, str(dst), map_location='cpu', strict=True)
    x = torch.rand(1, 3, 65, 65)
    with torch.no_grad():
        out = seg.decode_head(seg.backbone(x))
        expected = ref(x)
    assert out.shape == expected.shape == (1, 3, 9, 9)
    torch.testing.assert_close(out, expected, rtol=1e-4,
                               atol=1e-4 * expected.abs().max().item())

    # in-process (faster): --backbone-only, errors, nothing written on error
    spec = importlib.util.spec_from_file_location(
        'deeplab_resnet_to_mmwsss', osp.join(REPO, TOOL))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    bb = tmp_path / 'backbone.pth'
    script.main([str(src), str(bb), '--backbone-only'])
    backbone = DeepLabResNet(
        depth=50, init_cfg=dict(type='Pretrained', checkpoint=str(bb)))
    backbone.init_weights()
    _assert_state_equal(
        backbone, {k[len('backbone.'):]: v
                   for k, v in ckpt['state_dict'].items()
                   if k.startswith('backbone.')})
    # the converted file converts to itself
    again = tmp_path / 'again.pth'
    script.main([str(dst), str(again)])
    again_ckpt = torch.load(again)
    assert list(again_ckpt['state_dict']) == list(ckpt['state_dict'])
    assert again_ckpt['meta']['source_format'] == 'deeplab'

    truncated = tmp_path / 'truncated.pth'
    torch.save({k: v for k, v in ref.state_dict().items()
                if not k.startswith('layer4.block3.')}, truncated)
    with pytest.raises(ToolError,
                       match=r'truncated\.pth: .*missing keys in layer3\.2 '):
        script.main([str(truncated), str(tmp_path / 'never.pth')])
    torch.save({k: v for k, v in ref.state_dict().items()
                if not k.startswith('layer4.block6.')}, truncated)
    with pytest.raises(ToolError, match=r'\(3, 4, 5, 3\) are not those'):
        script.main([str(truncated), str(tmp_path / 'never.pth')])
    with pytest.raises(ToolError, match='unexpected keys: encoder.weight'):
        torch.save({'encoder.weight': torch.zeros(1)}, truncated)
        script.main([str(truncated), str(tmp_path / 'never.pth')])
    with pytest.raises(ToolError, match='cannot read'):
        script.main([str(tmp_path / 'nope.pth'), str(tmp_path / 'never.pth')])
    assert not (tmp_path / 'never.pth').exists()


def test_converter_tells_the_torchvision_preprocessing(tmp_path, capsys):
    """A torchvision ResNet converts, and the tool says which config settings it
    needs (pytorch style, RGB mean / std): the DeepLabV2 configs use caffe BGR."""
    import mmwsss  # noqa: F401  (torchvision shim first)
    import torchvision
    spec = importlib.util.spec_from_file_location(
        'deeplab_resnet_to_mmwsss', osp.join(REPO, TOOL))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    src = tmp_path / 'resnet50-tv.pth'
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), src)
    script.main([str(src), str(tmp_path / 'out.pth'), '--backbone-only'])
    out = capsys.readouterr().out
    assert 'model.backbone.style=pytorch' in out
    assert 'model.data_preprocessor.bgr_to_rgb=True' in out
    assert '[58.395,57.12,57.375]' in out
    assert torch.load(tmp_path / 'out.pth')['meta']['source_format'] == (
        'torchvision/mmseg')
