"""ResNet38d (PSA / EDAM backbone) and its checkpoint converter.

The reference below is a compact re-implementation of the official
``network/resnet38d.py`` (jiwoon-ahn/psa; allenwu97/EDAM is the same file with the
ReLU after ``bn7`` commented out): same module names, same forward, so its state
dict is what PSA / EDAM checkpoints hold.
"""
import importlib.util
import os.path as osp
import sys
import types
from collections import OrderedDict

import mmwsss  # noqa: F401  (compat shims first)
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.models.backbones import (ResNet38d, ResNet38dStateDictError,
                                     convert_resnet38d_state_dict)
from mmwsss.models.backbones.resnet38_weights import resnet38d_param_shapes
from mmwsss.registry import MODELS
from mmwsss.utils.cli import ToolError
from tests.conftest import REPO

TOOL = 'tools/model_converters/resnet38d_to_mmwsss.py'
X64 = (1, 3, 64, 64)


# ------------------------------------------------- official reference (PSA)
class _RefResBlock(nn.Module):

    def __init__(self, cin, mid, cout, stride=1, first_dilation=None,
                 dilation=1):
        super().__init__()
        self.same_shape = cin == cout and stride == 1
        fd = dilation if first_dilation is None else first_dilation
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, mid, 3, stride, padding=fd,
                                       dilation=fd, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid)
        self.conv_branch2b1 = nn.Conv2d(mid, cout, 3, padding=dilation,
                                        dilation=dilation, bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x, get_x_bn_relu=False):
        b2 = F.relu(self.bn_branch2a(x))
        x_bn_relu = b2
        b1 = x if self.same_shape else self.conv_branch1(b2)
        b2 = self.conv_branch2a(b2)
        b2 = self.conv_branch2b1(F.relu(self.bn_branch2b1(b2)))
        return (b1 + b2, x_bn_relu) if get_x_bn_relu else b1 + b2


class _RefResBlockBot(nn.Module):

    def __init__(self, cin, cout, stride=1, dilation=1, dropout=0.):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cout // 4, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cout // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(cout // 4, cout // 2, 3,
                                        padding=dilation, dilation=dilation,
                                        bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(cout // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(cout // 2, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x, get_x_bn_relu=False):
        b2 = F.relu(self.bn_branch2a(x))
        x_bn_relu = b2
        b1 = self.conv_branch1(b2)
        b2 = self.conv_branch2a(b2)
        b2 = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(b2))))
        b2 = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(b2))))
        return (b1 + b2, x_bn_relu) if get_x_bn_relu else b1 + b2


class _RefNet(nn.Module):
    """Official ``resnet38d.Net``; ``final_relu=False`` is EDAM's variant."""

    def __init__(self, final_relu=True):
        super().__init__()
        self.final_relu = final_relu
        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.b2 = _RefResBlock(64, 128, 128, stride=2)
        self.b2_1 = _RefResBlock(128, 128, 128)
        self.b2_2 = _RefResBlock(128, 128, 128)
        self.b3 = _RefResBlock(128, 256, 256, stride=2)
        self.b3_1 = _RefResBlock(256, 256, 256)
        self.b3_2 = _RefResBlock(256, 256, 256)
        self.b4 = _RefResBlock(256, 512, 512, stride=2)
        for i in range(1, 6):
            setattr(self, f'b4_{i}', _RefResBlock(512, 512, 512))
        self.b5 = _RefResBlock(512, 512, 1024, stride=1, first_dilation=1,
                               dilation=2)
        self.b5_1 = _RefResBlock(1024, 512, 1024, dilation=2)
        self.b5_2 = _RefResBlock(1024, 512, 1024, dilation=2)
        self.b6 = _RefResBlockBot(1024, 2048, stride=1, dilation=4,
                                  dropout=0.3)
        self.b7 = _RefResBlockBot(2048, 4096, dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(4096)

    def forward_as_dict(self, x):
        x = self.conv1a(x)
        for name in ('b2', 'b2_1', 'b2_2', 'b3', 'b3_1', 'b3_2', 'b4', 'b4_1',
                     'b4_2', 'b4_3', 'b4_4', 'b4_5'):
            x = getattr(self, name)(x)
        x, conv4 = self.b5(x, get_x_bn_relu=True)
        x = self.b5_2(self.b5_1(x))
        x, conv5 = self.b6(x, get_x_bn_relu=True)
        conv6 = self.bn7(self.b7(x))
        if self.final_relu:
            conv6 = F.relu(conv6)
        return dict(conv4=conv4, conv5=conv5, conv6=conv6)


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
            out[k] = torch.randn(v.shape, generator=g) * (1.0 / v[0].numel())**0.5
    return out


def _to_mxnet(name):
    """Official PyTorch name -> raw MXNet name (inverse of PSA's
    ``convert_mxnet_to_torch``), with the arg:/aux: prefixes of ``nd.save``."""
    bn = {'weight': 'arg:{}_gamma', 'bias': 'arg:{}_beta',
          'running_mean': 'aux:{}_moving_mean', 'running_var': 'aux:{}_moving_var'}
    if name == 'conv1a.weight':
        return 'arg:conv1a_weight'
    block, layer, param = name.split('.') if name.count('.') == 2 else (
        None, *name.split('.'))
    if block is None:  # bn7
        return bn[param].format(layer)
    stage, _, sub = block[1:].partition('_')
    mx_block = stage + (f'b{sub}' if sub else 'a')
    kind, branch = layer.split('_', 1)
    if kind == 'conv':
        return f'arg:res{mx_block}_{branch}_weight'
    return bn[param].format(f'bn{mx_block}_{branch}')


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope='module')
def official_state():
    """A randomised state dict of the official net (no num_batches_tracked would
    come from an MXNet conversion; training checkpoints have it)."""
    torch.manual_seed(0)
    return _randomize(_RefNet().state_dict(), seed=1)


@pytest.fixture(scope='module')
def edam_net():
    torch.manual_seed(0)
    return ResNet38d()


@pytest.fixture(scope='module')
def psa_net(official_state):
    """PSA variant returning conv4, conv5, conv6, with the official weights."""
    net = ResNet38d(final_relu=True, out_indices=(3, 4, 6))
    net.load_state_dict(official_state, strict=True)
    return net.eval()


def _load_tool():
    spec = importlib.util.spec_from_file_location('resnet38d_to_mmwsss',
                                                  osp.join(REPO, TOOL))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


# ------------------------------------------------------------ 1. structure
def test_layout_and_shapes(edam_net, psa_net):
    net = edam_net.eval()
    assert MODELS.get('ResNet38d') is ResNet38d
    assert net.out_indices == (6, ) and net.out_channels == (4096, )
    assert not net.final_relu and net.frozen_stages == 1 and net.norm_eval
    sd = net.state_dict()
    assert list(sd) == list(resnet38d_param_shapes())
    assert all(tuple(v.shape) == resnet38d_param_shapes()[k]
               for k, v in sd.items())
    n_params = sum(p.numel() for p in net.parameters())
    assert 104e6 < n_params < 106e6, n_params
    # dilations / strides of the official layout
    assert net.b5.conv_branch2a.dilation == (1, 1)
    assert net.b5.conv_branch2b1.dilation == (2, 2)
    assert net.b5_2.conv_branch2a.dilation == (2, 2)
    assert net.b6.conv_branch2b1.dilation == (4, 4)
    assert net.b7.conv_branch2b1.padding == (4, 4)
    assert net.b4.conv_branch2a.stride == (2, 2) and net.b5.conv_branch1.stride \
        == (1, 1)
    assert not hasattr(net.b2_1, 'conv_branch1') and hasattr(net.b5, 'conv_branch1')
    assert net.b6.dropout_2b1.p == 0.3 and net.b7.dropout_2b2.p == 0.5

    x = torch.randn(X64)
    with torch.no_grad():
        (out, ) = net(x)
        conv4, conv5, conv6 = psa_net(x)
    assert out.shape == (1, 4096, 8, 8)
    assert (out < 0).any()  # EDAM: no ReLU after bn7
    assert conv6.shape == (1, 4096, 8, 8) and (conv6 >= 0).all()
    assert (conv6 == 0).any()
    assert conv4.shape == (1, 512, 8, 8) and conv5.shape == (1, 1024, 8, 8)
    assert psa_net.out_channels == (512, 1024, 4096)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match='out_indices'):
        ResNet38d(out_indices=(7, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        ResNet38d(frozen_stages=7)
    with pytest.raises(ValueError, match='dropout'):
        ResNet38d(dropout=(0.3, ))


# ---------------------------------------------------------------- 2. frozen
def test_frozen_parts_and_dropout(edam_net):
    net = edam_net
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 15 * 2 + 2 * 3 + 1  # basic blocks, bottlenecks, bn7
    stats = {k: v.clone() for k, v in net.state_dict().items()
             if 'running' in k or 'num_batches' in k}
    frozen = ('conv1a', 'b2.', 'b2_1.', 'b2_2.')
    net.train()
    try:
        assert net.training and all(not m.training for m in bns)
        assert all(not p.requires_grad for m in bns for p in m.parameters())
        for name, p in net.named_parameters():
            if name.startswith(frozen):
                assert not p.requires_grad, name
            elif 'bn' not in name:
                assert p.requires_grad, name
        drops = [m for m in net.modules() if isinstance(m, nn.Dropout2d)]
        assert len(drops) == 4 and all(m.training for m in drops)

        x = torch.randn(X64)
        (out, ) = net(x)
        out.square().mean().backward()
        params = dict(net.named_parameters())
        for name, p in params.items():
            if name.startswith(frozen) or 'bn' in name:
                assert p.grad is None, name
        assert params['b3.conv_branch2a.weight'].grad is not None
        assert params['b7.conv_branch2b2.weight'].grad.abs().sum() > 0
        after = net.state_dict()
        for k, v in stats.items():
            assert torch.equal(after[k], v), k
        # dropout active in train mode: two passes differ; not in eval mode
        with torch.no_grad():
            (again, ) = net(x)
            assert not torch.allclose(out, again)
            net.eval()
            a, b = net(x)[0], net(x)[0]
            assert torch.equal(a, b)
    finally:
        net.zero_grad(set_to_none=True)
        net.eval()


def test_no_freezing_options():
    net = ResNet38d(frozen_stages=-1, norm_eval=False,
                    norm_cfg=dict(type='BN', requires_grad=True),
                    dropout=(0., 0.))
    net.train()
    assert all(p.requires_grad for p in net.parameters())
    assert all(m.training for m in net.modules())
    net = ResNet38d(frozen_stages=0)  # the bare official resnet38d.Net
    net.train()
    assert not net.conv1a.weight.requires_grad
    assert net.b2.conv_branch2a.weight.requires_grad


# ------------------------------------------------- 3. official equivalence
def test_official_state_dict_loads_and_matches(official_state, psa_net,
                                               edam_net):
    ref = _RefNet(final_relu=True)
    incompatible = ref.load_state_dict(official_state, strict=True)
    ref.eval()
    # our module names are the official ones: nothing missing / unexpected
    res = edam_net.load_state_dict(official_state, strict=False)
    assert not res.missing_keys and not res.unexpected_keys
    assert not incompatible.missing_keys
    x = torch.randn(X64)
    with torch.no_grad():
        want = ref.forward_as_dict(x)
        conv4, conv5, conv6 = psa_net(x)
        (edam, ) = edam_net.eval()(x)
        ref.final_relu = False
        want_edam = ref.forward_as_dict(x)['conv6']
    for got, key in ((conv4, 'conv4'), (conv5, 'conv5'), (conv6, 'conv6')):
        assert torch.allclose(got, want[key], rtol=1e-4, atol=1e-5), key
    assert torch.allclose(edam, want_edam, rtol=1e-4, atol=1e-5)
    assert (want_edam < 0).any()
    # an early stage alone (the forward stops after b5's BN-ReLU), any order
    early = ResNet38d(out_indices=(3, -7))
    early.load_state_dict(official_state)
    with torch.no_grad():
        got4, got0 = early.eval()(x)
    assert early.out_channels == (512, 64) and got0.shape == (1, 64, 64, 64)
    assert torch.allclose(got4, want['conv4'], rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------- 4. converter
def test_convert_psa_edam_and_mmwsss_names(official_state):
    expected = convert_resnet38d_state_dict(official_state)
    assert list(expected) == list(resnet38d_param_shapes())
    assert all(expected[k] is official_state[k] for k in official_state)

    # EDAM training checkpoint (DataParallel prefix + EDAM / PSA head keys)
    heads = {
        'mask_layer.weight': torch.zeros(21, 4096, 3, 3),
        'd_d.weight': torch.zeros(128, 4096, 1, 1),
        'embedding.position.pe': torch.zeros(1, 2116, 128),
        'embedding.segment.weight': torch.zeros(5, 128),
        'trans_list.0.0.attention.linear_layers.0.weight': torch.zeros(128, 128),
        'fc_list.3.weight': torch.zeros(1, 128, 1, 1),
        'fc8.weight': torch.zeros(20, 4096, 1, 1),
        'f8_3.weight': torch.zeros(64, 512, 1, 1),
        'f9.weight': torch.zeros(448, 448, 1, 1),
    }
    edam = {'module.' + k: v for k, v in {**official_state, **heads}.items()}
    got = convert_resnet38d_state_dict({'state_dict': edam})
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)

    # an mmwsss model checkpoint: only backbone.* is used
    model = {'backbone.' + k: v for k, v in official_state.items()}
    model['decode_head.conv_seg.weight'] = torch.zeros(21, 4096, 1, 1)
    model['decode_head.b2.conv_branch1.weight'] = torch.zeros(1)
    got = convert_resnet38d_state_dict(model)
    assert all(torch.equal(got[k], expected[k]) for k in expected)

    # no num_batches_tracked (MXNet conversion): zeros
    plain = {k: v for k, v in official_state.items()
             if not k.endswith('num_batches_tracked')}
    got = convert_resnet38d_state_dict(plain)
    assert list(got) == list(expected)
    assert got['b7.bn_branch2b2.num_batches_tracked'].item() == 0


def test_convert_raw_mxnet_names(official_state):
    mx = {_to_mxnet(k): v.numpy() for k, v in official_state.items()
          if not k.endswith('num_batches_tracked')}
    assert 'arg:res4b5_branch2b1_weight' in mx and 'aux:bn7_moving_var' in mx
    assert 'arg:bn2a_branch2a_gamma' in mx and 'arg:res5a_branch1_weight' in mx
    mx['arg:linear1000_weight'] = np.zeros((1000, 4096), np.float32)
    mx['arg:linear1000_bias'] = np.zeros((1000, ), np.float32)
    got = convert_resnet38d_state_dict(mx)
    assert list(got) == list(resnet38d_param_shapes())
    for k, v in official_state.items():
        if not k.endswith('num_batches_tracked'):
            assert torch.equal(got[k], v), k
    # without arg:/aux: prefixes too
    bare = {k.split(':', 1)[1]: v for k, v in mx.items()}
    assert torch.equal(convert_resnet38d_state_dict(bare)['bn7.running_var'],
                       official_state['bn7.running_var'])


def test_convert_errors_name_the_keys(official_state):
    bad = dict(official_state)
    del bad['b4_3.conv_branch2a.weight']
    with pytest.raises(ResNet38dStateDictError,
                       match=r'1 missing keys: b4_3\.conv_branch2a\.weight'):
        convert_resnet38d_state_dict(bad)
    assert issubclass(ResNet38dStateDictError, ValueError)

    bad = dict(official_state)
    bad['b2_1.conv_branch1.weight'] = torch.zeros(128, 128, 1, 1)
    bad['encoder.weight'] = torch.zeros(1)
    with pytest.raises(ResNet38dStateDictError,
                       match=r'2 unexpected keys: b2_1\.conv_branch1\.weight, '
                       r'encoder\.weight'):
        convert_resnet38d_state_dict(bad)

    bad = dict(official_state)
    bad['bn7.weight'] = torch.zeros(2048)
    with pytest.raises(ResNet38dStateDictError,
                       match=r'bn7\.weight: checkpoint \(2048,\) vs ResNet38d '
                       r'\(4096,\)'):
        convert_resnet38d_state_dict(bad)

    dup = dict(official_state)
    dup['arg:conv1a_weight'] = official_state['conv1a.weight']
    with pytest.raises(ResNet38dStateDictError, match='duplicate keys'):
        convert_resnet38d_state_dict(dup)
    with pytest.raises(TypeError):
        convert_resnet38d_state_dict([1, 2])


def test_converter_tool_round_trip(official_state, tmp_path, monkeypatch):
    script = _load_tool()
    src = tmp_path / 'edam_ep5.pth'
    edam = {'module.' + k: v for k, v in official_state.items()}
    edam['module.mask_layer.weight'] = torch.zeros(21, 4096, 3, 3)
    torch.save(edam, src)
    dst = tmp_path / 'out' / 'resnet38d_mmwsss.pth'
    script.main([str(src), str(dst)])
    ckpt = torch.load(dst, map_location='cpu')
    assert ckpt['meta']['source'] == src.name
    assert list(ckpt['state_dict']) == list(resnet38d_param_shapes())

    net = ResNet38d(init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    net.init_weights()
    sd = net.state_dict()
    for k, v in official_state.items():
        assert torch.equal(sd[k], v), k

    # --prefix backbone. : a whole-model checkpoint, loadable with prefix
    whole = tmp_path / 'whole.pth'
    script.main([str(src), str(whole), '--prefix', 'backbone.'])
    assert all(k.startswith('backbone.')
               for k in torch.load(whole)['state_dict'])
    net.load_pretrained(str(whole), prefix='backbone.')

    # errors: one ToolError naming the file and the key, nothing written
    truncated = tmp_path / 'truncated.pth'
    torch.save({k: v for k, v in official_state.items()
                if not k.startswith('b6.')}, truncated)
    with pytest.raises(ToolError,
                       match=r'truncated\.pth: .*missing keys: b6\.bn_branch2a'):
        script.main([str(truncated), str(tmp_path / 'never.pth')])
    with pytest.raises(ToolError, match='cannot read'):
        script.main([str(tmp_path / 'nope.pth'), str(tmp_path / 'never.pth')])
    assert not (tmp_path / 'never.pth').exists()
    with pytest.raises(ResNet38dStateDictError, match=r'truncated\.pth: '):
        net.load_pretrained(str(truncated))

    # an MXNet .params file: needs mxnet (a fake one here)
    params = tmp_path / 'ilsvrc-cls_rna-a1_cls1000_ep-0001.params'
    params.write_bytes(b'not read by the fake mxnet')
    monkeypatch.setitem(sys.modules, 'mxnet', None)
    with pytest.raises(ToolError, match='needs the mxnet package'):
        script.main([str(params), str(tmp_path / 'never.pth')])

    class _Array:

        def __init__(self, a):
            self.a = a

        def asnumpy(self):
            return self.a

    fake = types.SimpleNamespace(
        nd=types.SimpleNamespace(load=lambda p: {
            _to_mxnet(k): _Array(v.numpy())
            for k, v in official_state.items()
            if not k.endswith('num_batches_tracked')
        }),
        base=types.SimpleNamespace(MXNetError=RuntimeError))
    monkeypatch.setitem(sys.modules, 'mxnet', fake)
    from_mx = tmp_path / 'from_mx.pth'
    script.main([str(params), str(from_mx)])
    got = torch.load(from_mx)['state_dict']
    assert torch.equal(got['b4_5.bn_branch2b1.running_var'],
                       official_state['b4_5.bn_branch2b1.running_var'])
