"""The optimiser and schedule of the EDAM VOC config (configs/_base_/schedules/
schedule_edam_voc.py; Wu et al., CVPR 2021, §4.2; docs/methods/edam.md): lr multipliers
of the official code (the new DA conv, reduction and classifiers at 10 x; backbone,
Transformer blocks and embeddings at 1 x, all decayed, the Transformer's layer-norm
scales and biases as plain weights) and the warm-up + poly learning rate."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmwsss.registry import MODELS, PARAM_SCHEDULERS
from tests.conftest import REPO

CFG = osp.join(REPO, 'configs', 'edam', 'edam_resnet38d_voc.py')
TINY_BACKBONE = dict(
    _delete_=True, type='mmseg.ResNetV1c', depth=18, stem_channels=8,
    base_channels=8, out_indices=(3, ), dilations=(1, 1, 2, 4),
    strides=(1, 2, 1, 1), contract_dilation=True)


@pytest.fixture(scope='module')
def optim():
    init_default_scope('mmwsss')
    cfg = Config.fromfile(CFG)
    # a small backbone with the config's head (its parameter names are the
    # config's): building ResNet-38d adds nothing to what is checked here
    cfg.merge_from_dict(dict(model=dict(backbone=TINY_BACKBONE,
                                        head=dict(in_channels=64))))
    model = MODELS.build(cfg.model)
    return cfg, model, build_optim_wrapper(model, cfg.optim_wrapper)


def _group_of(wrapper, model, name):
    param = dict(model.named_parameters())[name]
    (group, ) = [g for g in wrapper.optimizer.param_groups
                 if any(p is param for p in g['params'])]
    return group


@pytest.mark.parametrize('name,lr', [
    ('head.da.conv.weight', 1e-2),
    ('head.reduce.weight', 1e-2),
    ('head.cma.classifier.weight', 1e-2),
    ('head.cma.layers.0.qkv_weight', 1e-3),
    ('head.cma.layers.0.qkv_bias', 1e-3),
    ('head.cma.layers.0.norm1_weight', 1e-3),
    ('head.cma.layers.0.norm2_bias', 1e-3),
    ('head.cma.segment_embed.weight', 1e-3),
    ('backbone.layer4.1.conv2.weight', 1e-3),
])
def test_lr_and_decay_per_parameter(optim, name, lr):
    cfg, model, wrapper = optim
    group = _group_of(wrapper, model, name)
    assert group['lr'] == pytest.approx(lr)
    # the official code decays every group, the Transformer's too (paper: 2e-4)
    assert group['weight_decay'] == pytest.approx(2e-4)
    assert cfg.optim_wrapper.optimizer.momentum == 0.9


@pytest.mark.filterwarnings('ignore:Seems like `optimizer.step()`')
def test_warm_up_and_poly_schedule(optim):
    cfg, model, wrapper = optim
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper))
        for s in cfg.param_scheduler
    ]
    da = _group_of(wrapper, model, 'head.da.conv.weight')
    qkv = _group_of(wrapper, model, 'head.cma.layers.0.qkv_weight')
    seen = {}
    for it in range(30000):
        if it in (0, 1000, 2000, 16000, 29999):
            seen[it] = (qkv['lr'], da['lr'])
        for s in schedulers:
            s.step()
    assert seen[0][0] == pytest.approx(1e-4)
    # MMEngine's LinearLR reaches its end factor at iteration end - 1 (1999)
    assert seen[1000][0] == pytest.approx(1e-4 + 9e-4 * 1000 / 1999)
    assert seen[2000][0] == pytest.approx(1e-3)
    # (MMEngine counts the poly phase over end - begin - 1 steps)
    assert seen[16000][0] == pytest.approx(1e-3 * 0.5**0.9, rel=1e-4)
    assert seen[29999][0] < 1e-7
    for it, (base, new) in seen.items():  # the 10 x groups follow the same curve
        assert new == pytest.approx(10 * base, abs=1e-12), it
    assert cfg.train_cfg.max_iters == 30000
