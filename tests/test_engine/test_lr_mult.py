import torch
import torch.nn as nn
from mmengine.registry import init_default_scope


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3)
        self.head = nn.Sequential(nn.Conv2d(4, 2, 1))


def test_lr_multipliers():
    got = _groups(dict(new_layers=('head', )), net=_Net())
    expect = {
        'backbone.weight': (1e-3, 2e-4),
        'backbone.bias': (2e-3, 0.0),
        'head.0.weight': (1e-2, 2e-4),
        'head.0.bias': (2e-2, 0.0),
    }
    assert set(got) == set(expect)
    for name, (lr, wd) in expect.items():
        assert abs(got[name][0] - lr) < 1e-12, name
        assert abs(got[name][1] - wd) < 1e-12, name


def test_unknown_key_is_an_error():
    import pytest

    from mmwsss.engine.optimizers import LRMultOptimWrapperConstructor
    with pytest.raises(KeyError, match='new_lr'):
        LRMultOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1)), dict(new_lr=3))


class _NormNet(nn.Module):
    """Pretrained part and new part, each with a conv (weight + bias), BatchNorm2d,
    LayerNorm, GroupNorm; plus a bias-free conv and a 1-D non-norm parameter."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(2, 4),
            nn.LayerNorm(4), nn.Conv2d(4, 4, 1, bias=False))
        self.head = nn.Sequential(
            nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.GroupNorm(2, 4),
            nn.LayerNorm(4))
        self.head.scale = nn.Parameter(torch.ones(4))  # 1-D, but not a bias


# parameter name -> kind, for _NormNet
_KINDS = {
    'backbone.0.weight': 'weight', 'backbone.0.bias': 'bias',
    'backbone.1.weight': 'norm', 'backbone.1.bias': 'bias',
    'backbone.2.weight': 'norm', 'backbone.2.bias': 'bias',
    'backbone.3.weight': 'norm', 'backbone.3.bias': 'bias',
    'backbone.4.weight': 'weight',
    'head.scale': 'weight',
    'head.0.weight': 'weight', 'head.0.bias': 'bias',
    'head.1.weight': 'norm', 'head.1.bias': 'bias',
    'head.2.weight': 'norm', 'head.2.bias': 'bias',
    'head.3.weight': 'norm', 'head.3.bias': 'bias',
}


def _groups(paramwise_cfg, lr=1e-3, wd=2e-4, net=None):
    init_default_scope('mmwsss')
    import mmwsss.engine  # noqa: F401
    from mmwsss.registry import OPTIM_WRAPPER_CONSTRUCTORS
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LRMultOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper',
                optimizer=dict(type='SGD', lr=lr, momentum=0.9,
                               weight_decay=wd)),
            paramwise_cfg=paramwise_cfg))
    net = net or _NormNet()
    groups = ctor(net).optimizer.param_groups
    assert all(len(g['params']) == 1 for g in groups)
    by_param = {id(g['params'][0]): g for g in groups}
    names = [n for n, _ in net.named_parameters()]
    assert len(groups) == len(names)
    # one group per parameter, in named_parameters order
    assert [id(g['params'][0]) for g in groups] == [
        id(p) for _, p in net.named_parameters()]
    return {n: (by_param[id(p)]['lr'], by_param[id(p)]['weight_decay'])
            for n, p in net.named_parameters()}


def _check(got, expect_by_kind, lr=1e-3, wd=2e-4):
    assert set(got) == set(_KINDS)
    for name, (g_lr, g_wd) in got.items():
        part = 'new' if name.startswith('head') else 'old'
        mult, decay = expect_by_kind[part][_KINDS[name]]
        assert abs(g_lr - lr * mult) < 1e-12, (name, g_lr, lr * mult)
        assert abs(g_wd - wd * decay) < 1e-15, (name, g_wd, wd * decay)


def test_norm_weights_default_cfg():
    """Defaults: norm weights train like weights (x1 / x10, decayed); the biases of
    the norm layers stay biases (x2 / x20, not decayed)."""
    got = _groups(dict(new_layers=('head', )))
    _check(got, {
        'old': dict(weight=(1, 1), bias=(2, 0), norm=(1, 1)),
        'new': dict(weight=(10, 1), bias=(20, 0), norm=(10, 1)),
    })


def test_norm_lr_follows_weight_lr_mult():
    got = _groups(dict(new_layers=('head', ), weight_lr_mult=0.5,
                       new_weight_lr_mult=4.0))
    _check(got, {
        'old': dict(weight=(0.5, 1), bias=(2, 0), norm=(0.5, 1)),
        'new': dict(weight=(4, 1), bias=(20, 0), norm=(4, 1)),
    })


def test_norm_weights_custom_cfg():
    got = _groups(dict(new_layers=('head', ), norm_lr_mult=3.0,
                       new_norm_lr_mult=7.0, norm_decay_mult=0.0,
                       bias_decay_mult=0.5, bias_lr_mult=1.5,
                       new_bias_lr_mult=15.0))
    _check(got, {
        'old': dict(weight=(1, 1), bias=(1.5, 0.5), norm=(3, 0)),
        'new': dict(weight=(10, 1), bias=(15, 0.5), norm=(7, 0)),
    })


def test_layernorm_weight_is_not_a_bias():
    """The old rule (every 1-D parameter is a bias) gave a LayerNorm scale the bias
    lr (x2) and no weight decay."""
    got = _groups(dict(new_layers=('head', )))
    assert got['backbone.3.weight'] == (1e-3, 2e-4)  # old code: (2e-3, 0.0)
    assert got['head.3.weight'] == (1e-2, 2e-4)  # old code: (2e-2, 0.0)
    assert got['backbone.3.bias'] == (2e-3, 0.0)


def test_norm_detected_by_type_not_name():
    """A LayerNorm subclass under a conv-like name is a norm; a conv named like a
    norm layer is not; mmcv's build_norm_layer norms are norms."""
    from mmcv.cnn import build_norm_layer

    class MyLN(nn.LayerNorm):
        pass

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.conv = MyLN(4)
            self.backbone.bn1 = nn.Conv1d(4, 4, 1)
            self.backbone.gn = build_norm_layer(dict(type='GN', num_groups=2),
                                                4)[1]
            self.backbone.syncbn = build_norm_layer(dict(type='SyncBN'), 4)[1]
            self.backbone.inorm = build_norm_layer(
                dict(type='IN', affine=True), 4)[1]

    net = Net()
    got = _groups(dict(new_layers=('head', ), norm_lr_mult=3.0), net=net)
    assert got['backbone.conv.weight'] == (3e-3, 2e-4)
    assert got['backbone.bn1.weight'] == (1e-3, 2e-4)
    assert got['backbone.bn1.bias'] == (2e-3, 0.0)
    for norm in ('gn', 'syncbn', 'inorm'):
        assert got[f'backbone.{norm}.weight'] == (3e-3, 2e-4), norm
        assert got[f'backbone.{norm}.bias'] == (2e-3, 0.0), norm


def test_shared_parameter_gets_one_group():
    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = nn.LayerNorm(4)
            self.head = nn.Module()
            self.head.tied = self.backbone  # the same LayerNorm twice

    net = Net()
    got = _groups(dict(new_layers=('head', )), net=net)
    assert got == {'backbone.weight': (1e-3, 2e-4),
                   'backbone.bias': (2e-3, 0.0)}


def test_new_norm_keys_are_validated():
    import pytest

    from mmwsss.engine.optimizers import LRMultOptimWrapperConstructor
    with pytest.raises(KeyError, match='norm_weight_decay'):
        LRMultOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1)),
            dict(norm_weight_decay=0.0))
