import torch.nn as nn
from mmengine.registry import init_default_scope


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3)
        self.head = nn.Sequential(nn.Conv2d(4, 2, 1))


def test_lr_multipliers():
    init_default_scope('mmwsss')
    import mmwsss.engine  # noqa: F401
    from mmwsss.registry import OPTIM_WRAPPER_CONSTRUCTORS
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LRMultOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper',
                optimizer=dict(type='SGD', lr=1e-3, momentum=0.9,
                               weight_decay=2e-4)),
            paramwise_cfg=dict(new_layers=('head', ))))
    net = _Net()
    wrapper = ctor(net)
    groups = wrapper.optimizer.param_groups
    by_param = {id(g['params'][0]): g for g in groups}
    expect = {
        'backbone.weight': (1e-3, 2e-4),
        'backbone.bias': (2e-3, 0.0),
        'head.0.weight': (1e-2, 2e-4),
        'head.0.bias': (2e-2, 0.0),
    }
    for name, p in net.named_parameters():
        g = by_param[id(p)]
        assert abs(g['lr'] - expect[name][0]) < 1e-12, name
        assert abs(g['weight_decay'] - expect[name][1]) < 1e-12, name


def test_unknown_key_is_an_error():
    import pytest

    from mmwsss.engine.optimizers import LRMultOptimWrapperConstructor
    with pytest.raises(KeyError, match='new_lr'):
        LRMultOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1)), dict(new_lr=3))
