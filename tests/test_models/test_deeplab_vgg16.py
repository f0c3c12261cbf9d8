import importlib.util
import os.path as osp
import re
import subprocess
import sys

import mmwsss  # noqa: F401  (compat shims before torchvision)
import pytest
import torch
import torch.nn.functional as F

from mmwsss.models.backbones import (DeepLabVGG16, VGGStateDictError,
                                     convert_vgg16_state_dict)
from mmwsss.models.backbones.vgg_weights import (VGG16_CONV_INDICES,
                                                 VGG16_CONV_NAMES)
from mmwsss.utils.cli import ToolError
from tests.conftest import REPO, run_env

# Per-stage output (H, W) derived by hand for the two test inputs.
# oaa: 2x2/2 pools (floor), pool4 3x3/1, no pool5.
# largefov: 3x3/2/1 pools (ceil(H/2)), pool4/pool5 3x3/1.
# plain: five 2x2/2 pools (floor).
EXPECTED = {
    ('oaa', 64, 64): [(32, 32), (16, 16), (8, 8), (8, 8), (8, 8)],
    ('oaa', 65, 67): [(32, 33), (16, 16), (8, 8), (8, 8), (8, 8)],
    ('largefov', 64, 64): [(32, 32), (16, 16), (8, 8), (8, 8), (8, 8)],
    ('largefov', 65, 67): [(33, 34), (17, 17), (9, 9), (9, 9), (9, 9)],
    ('plain', 64, 64): [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)],
    ('plain', 65, 67): [(32, 33), (16, 16), (8, 8), (4, 4), (2, 2)],
}


@pytest.fixture(scope='module')
def tv_vgg():
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval()
    # torchvision zero-initialises conv biases: randomise them so that a wrong
    # bias mapping cannot go unnoticed.
    with torch.no_grad():
        for i in VGG16_CONV_INDICES:
            model.features[i].bias.normal_(0, 0.1)
    return model


@pytest.fixture(scope='module')
def tv_state(tv_vgg):
    # The real torchvision key set; the (dropped) classifier tensors are replaced
    # by small stand-ins so that saving checkpoints stays fast.
    return {
        k: v.clone() if k.startswith('features.') else torch.zeros(2)
        for k, v in tv_vgg.state_dict().items()
    }


def _caffe_state(tv_state):
    return {
        f'{name}.{p}': tv_state[f'features.{i}.{p}']
        for name, i in zip(VGG16_CONV_NAMES, VGG16_CONV_INDICES)
        for p in ('weight', 'bias')
    }


def _assert_same_weights(model, tv_state):
    sd = model.state_dict()
    assert len(sd) == 26
    for i in VGG16_CONV_INDICES:
        for p in ('weight', 'bias'):
            torch.testing.assert_close(sd[f'features.{i}.{p}'],
                                       tv_state[f'features.{i}.{p}'],
                                       rtol=0, atol=0)


@pytest.mark.parametrize('key', sorted(EXPECTED))
def test_output_shapes(key):
    variant, h, w = key
    model = DeepLabVGG16(variant, width=0.25, out_indices=(0, 1, 2, 3, 4))
    outs = model(torch.rand(1, 3, h, w))
    assert isinstance(outs, tuple) and len(outs) == 5
    assert [tuple(o.shape[-2:]) for o in outs] == EXPECTED[key]
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128, 128]
    strides = {'plain': (2, 4, 8, 16, 32)}.get(variant, (2, 4, 8, 8, 8))
    assert model.stage_strides == strides


def test_default_out_and_full_width():
    model = DeepLabVGG16('oaa')
    (out, ) = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 512, 8, 8)
    assert model.out_indices == (4, ) and model.out_channels == (512, )
    assert sum(p.numel() for p in model.parameters()) == 14714688
    # no pool5 in oaa: conv5_3's ReLU is the last layer
    assert len(model.features) == 30
    assert len(DeepLabVGG16('largefov').features) == 31


def test_width_and_out_indices():
    model = DeepLabVGG16('largefov', width=0.25, out_indices=(3, 1, -1))
    assert model.stage_channels == (16, 32, 64, 128, 128)
    assert model.out_indices == (3, 1, 4)
    assert model.out_channels == (128, 32, 128)
    outs = model(torch.rand(1, 3, 33, 33))
    assert [tuple(o.shape[1:]) for o in outs] == [(128, 5, 5), (32, 9, 9),
                                                  (128, 5, 5)]
    tiny = DeepLabVGG16('plain', width=0.001, out_indices=2)
    assert tiny.stage_channels == (1, 1, 1, 1, 1)
    assert tiny(torch.rand(1, 3, 16, 16))[0].shape == (1, 1, 2, 2)
    conv5 = [m for m in DeepLabVGG16('oaa', width=0.25).features[24:]
             if isinstance(m, torch.nn.Conv2d)]
    assert all(c.dilation == (2, 2) and c.padding == (2, 2) for c in conv5)
    for bad in (dict(variant='vgg'), dict(width=0), dict(out_indices=(5, )),
                dict(out_indices=()), dict(frozen_stages=5)):
        with pytest.raises(ValueError):
            DeepLabVGG16(**bad)


def test_default_init_is_torchvision_like():
    torch.manual_seed(0)
    model = DeepLabVGG16('oaa')
    conv = model.features[28]
    assert torch.count_nonzero(conv.bias) == 0
    std = (2.0 / (512 * 9))**0.5  # kaiming fan_out
    assert abs(conv.weight.std().item() - std) / std < 0.05


def test_torchvision_plain_equal(tv_vgg, tv_state):
    model = DeepLabVGG16('plain').eval()
    model.load_state_dict(convert_vgg16_state_dict(tv_state))
    _assert_same_weights(model, tv_state)
    x = torch.rand(1, 3, 35, 33)
    with torch.no_grad():
        (out, ) = model(x)
        ref = tv_vgg.features(x)
    torch.testing.assert_close(out, ref)


def test_torchvision_oaa_stages_equal(tv_vgg, tv_state):
    model = DeepLabVGG16('oaa', out_indices=(0, 1, 2, 3, 4)).eval()
    model.load_state_dict(convert_vgg16_state_dict(tv_state))
    x = torch.rand(1, 3, 40, 40)
    feats = tv_vgg.features
    with torch.no_grad():
        outs = model(x)
        # conv1-conv3 stages (incl. the 2x2 pools) are torchvision's
        ref = x
        for stage, (start, end) in enumerate(((0, 5), (5, 10), (10, 17))):
            ref = feats[start:end](ref)
            torch.testing.assert_close(outs[stage], ref)
        # conv4: torchvision up to conv4_3 + ReLU, then the 3x3/1 pool4
        conv4 = feats[17:23](ref)
        torch.testing.assert_close(
            outs[3], F.max_pool2d(conv4, 3, stride=1, padding=1))
        # conv5: torchvision's conv5 weights with dilation 2
        y = outs[3]
        for i in (24, 26, 28):
            y = F.relu(F.conv2d(y, feats[i].weight, feats[i].bias, padding=2,
                                dilation=2))
        torch.testing.assert_close(outs[4], y)


def test_caffe_and_other_layouts(tv_state):
    ref = convert_vgg16_state_dict(tv_state)
    assert list(ref) == [f'features.{i}.{p}' for i in VGG16_CONV_INDICES
                         for p in ('weight', 'bias')]
    caffe = _caffe_state(tv_state)
    extra = {'fc6.weight': torch.zeros(1), 'fc7.bias': torch.zeros(1),
             'fc8_voc12.weight': torch.zeros(1)}
    layouts = [
        {'state_dict': {**caffe, **extra}},
        {'features.' + k: v for k, v in caffe.items()},
        {'backbone.' + k: v for k, v in caffe.items()},
        # OAA official checkpoint saved from DataParallel
        {'module.' + k: v for k, v in tv_state.items()
         if k.startswith('features.')} | {'module.extra_convs.0.weight':
                                          torch.zeros(1)},
        # rulixiang/deeplab-pytorch DeepLabV1_LargeFOV
        {re.sub(r'conv(\d)_(\d)', r'block_\1.conv\2', k): v
         for k, v in caffe.items()} | {'conv6.weight': torch.zeros(1)},
        # wangleihitcs/DeepLab-V1-PyTorch (fc6/fc7/fc8 = features.32/35/38)
        {**{k: v for k, v in tv_state.items() if k.startswith('features.')},
         'features.38.weight': torch.zeros(1)},
    ]
    assert 'block_1.conv1.weight' in layouts[4]
    for sd in layouts:
        out = convert_vgg16_state_dict(sd)
        assert list(out) == list(ref)
        for k in ref:
            assert torch.equal(out[k], ref[k]), k
    model = DeepLabVGG16('largefov')
    model.load_state_dict(convert_vgg16_state_dict(caffe))
    _assert_same_weights(model, tv_state)


def test_convert_errors(tv_state):
    caffe = _caffe_state(tv_state)
    missing = {k: v for k, v in caffe.items() if not k.startswith('conv5_3')}
    with pytest.raises(VGGStateDictError) as e:
        convert_vgg16_state_dict(missing)
    msg = str(e.value)
    assert 'missing keys' in msg and 'features.28.weight (conv5_3)' in msg
    assert isinstance(e.value, KeyError)
    with pytest.raises(KeyError, match=r'unexpected keys: .*head\.bn\.weight'):
        convert_vgg16_state_dict({**caffe, 'head.bn.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='duplicate keys'):
        convert_vgg16_state_dict({**caffe, 'features.0.weight': torch.zeros(1)})
    with pytest.raises(TypeError):
        convert_vgg16_state_dict([1, 2])


def test_pretrained_init_cfg(tmp_path, tv_state):
    path = tmp_path / 'vgg16_caffe.pth'
    torch.save(_caffe_state(tv_state), path)
    model = DeepLabVGG16(
        'oaa', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    _assert_same_weights(model, tv_state)

    # torchvision names with the classifier, under a prefix, wrapped
    full = tmp_path / 'model.pth'
    torch.save({'state_dict': {'backbone.' + k: v
                               for k, v in tv_state.items()}}, full)
    from mmengine.model import BaseModule

    class Parent(BaseModule):  # the backbone inside a model, as in a Runner

        def __init__(self):
            super().__init__()
            self.backbone = DeepLabVGG16('largefov', init_cfg=dict(
                type='Pretrained', checkpoint=str(full), prefix='backbone.'))

    parent = Parent()
    parent.init_weights()
    _assert_same_weights(parent.backbone, tv_state)
    assert not hasattr(parent.backbone, '_params_init_info')
    with pytest.raises(KeyError, match='prefix'):
        DeepLabVGG16(init_cfg=dict(type='Pretrained', checkpoint=str(full),
                                   prefix='neck.')).init_weights()

    # other init_cfg entries run first, Pretrained wins
    model = DeepLabVGG16('plain', init_cfg=[
        dict(type='Constant', layer='Conv2d', val=0.5),
        dict(type='Pretrained', checkpoint=str(path))])
    model.init_weights()
    _assert_same_weights(model, tv_state)


def test_pretrained_errors(tmp_path, tv_state):
    bad = tmp_path / 'bad.pth'
    caffe = _caffe_state(tv_state)
    caffe.pop('conv1_1.bias')
    torch.save(caffe, bad)
    model = DeepLabVGG16(init_cfg=dict(type='Pretrained', checkpoint=str(bad)))
    with pytest.raises(KeyError, match=r'bad\.pth.*conv1_1'):
        model.init_weights()
    with pytest.raises(ValueError, match='width=0.5'):
        DeepLabVGG16(width=0.5,
                     init_cfg=dict(type='Pretrained', checkpoint=str(bad)))
    model = DeepLabVGG16(width=0.5)
    model.init_cfg = dict(type='Pretrained', checkpoint=str(bad))
    with pytest.raises(ValueError, match='width'):
        model.init_weights()


def test_frozen_stages():
    model = DeepLabVGG16('oaa', width=0.25, frozen_stages=1)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {f'features.{i}.{p}' for i in (0, 2, 5, 7)
                      for p in ('weight', 'bias')}
    model.train()
    assert not model.features[0].weight.requires_grad


def test_registry_build():
    from mmengine.registry import init_default_scope

    import mmwsss.models.backbones  # noqa: F401
    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules()
    init_default_scope('mmwsss')
    model = MODELS.build(
        dict(type='DeepLabVGG16', variant='largefov', width=0.25,
             out_indices=(2, 4)))
    assert isinstance(model, DeepLabVGG16)
    assert model.out_channels == (64, 128)
    from mmseg.registry import MODELS as MMSEG_MODELS
    assert isinstance(
        MMSEG_MODELS.build(dict(type='mmwsss.DeepLabVGG16', width=0.25)),
        DeepLabVGG16)


def test_converter_script(tmp_path, tv_state):
    src = tmp_path / 'vgg16-tv.pth'
    torch.save(tv_state, src)
    dst = tmp_path / 'out' / 'vgg16_mmwsss.pth'
    p = subprocess.run(
        [sys.executable, 'tools/model_converters/vgg16_to_mmwsss.py',
         str(src), str(dst)], cwd=REPO, env=run_env(), capture_output=True,
        text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    ckpt = torch.load(dst, map_location='cpu')
    assert len(ckpt['state_dict']) == 26
    model = DeepLabVGG16(
        'oaa', init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    _assert_same_weights(model, tv_state)

    # a bad checkpoint: clear error, nothing written (in-process: faster)
    spec = importlib.util.spec_from_file_location(
        'vgg16_to_mmwsss',
        osp.join(REPO, 'tools/model_converters/vgg16_to_mmwsss.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    bad = tmp_path / 'bad.pth'
    torch.save({'conv1_1.weight': torch.zeros(1)}, bad)
    with pytest.raises(ToolError, match='missing keys'):
        script.main([str(bad), str(tmp_path / 'never.pth')])
    assert not (tmp_path / 'never.pth').exists()
    script.main([str(src), str(tmp_path / 'p.pth'), '--prefix', 'backbone.'])
    keys = torch.load(tmp_path / 'p.pth')['state_dict']
    assert sorted(keys) == sorted('backbone.' + k for k in ckpt['state_dict'])
