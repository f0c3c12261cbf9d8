from typing import List, Optional

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor

from mmwsss.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LRMultOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """DeepLab / OAA learning-rate multipliers: new layers train faster.

    Every parameter gets its own group with ``lr = base_lr * mult`` where ``mult`` is

    ===================  ==========================  ==========
    parameter            key in ``paramwise_cfg``     OAA/DeepLab
    ===================  ==========================  ==========
    pretrained weight    ``weight_lr_mult``           1
    pretrained bias      ``bias_lr_mult``             2
    new-layer weight     ``new_weight_lr_mult``       10
    new-layer bias       ``new_bias_lr_mult``         20
    ===================  ==========================  ==========

    "New layers" are the parameters whose name (relative to the model) starts with one
    of ``paramwise_cfg.new_layers`` (default ``('head', 'neck')``; e.g. ``'decode_head'``
    for a segmentor). Biases get ``weight_decay * bias_decay_mult`` (default 0, as
    Caffe/DeepLab). Example::

        optim_wrapper = dict(
            optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=2e-4),
            constructor='LRMultOptimWrapperConstructor',
            paramwise_cfg=dict(new_layers=('head', ), new_weight_lr_mult=10,
                               new_bias_lr_mult=20, bias_lr_mult=2))
    """
    DEFAULTS = dict(
        new_layers=('head', 'neck'),
        weight_lr_mult=1.0,
        bias_lr_mult=2.0,
        new_weight_lr_mult=10.0,
        new_bias_lr_mult=20.0,
        bias_decay_mult=0.0)

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        cfg = dict(self.DEFAULTS)
        unknown = set(paramwise_cfg or {}) - set(cfg)
        if unknown:
            raise KeyError(
                f'LRMultOptimWrapperConstructor: unknown paramwise_cfg keys '
                f'{sorted(unknown)}; allowed: {sorted(cfg)}')
        cfg.update(paramwise_cfg or {})
        cfg['new_layers'] = tuple(cfg['new_layers'])
        self.mult_cfg = cfg
        # the parent validates paramwise_cfg against its own keys: give it none
        super().__init__(optim_wrapper_cfg, None)
        self.paramwise_cfg = dict(cfg)  # non-empty: __call__ uses add_params

    def _is_new(self, name: str) -> bool:
        return any(name == k or name.startswith(k + '.')
                   for k in self.mult_cfg['new_layers'])

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module=None) -> None:
        cfg = self.mult_cfg
        wd = self.base_wd
        for name, param in module.named_parameters(prefix=prefix):
            is_bias = name.endswith('.bias') or param.ndim == 1
            if self._is_new(name):
                mult = cfg['new_bias_lr_mult'] if is_bias else \
                    cfg['new_weight_lr_mult']
            else:
                mult = cfg['bias_lr_mult'] if is_bias else cfg['weight_lr_mult']
            group = dict(params=[param], lr=self.base_lr * mult)
            if wd is not None:
                group['weight_decay'] = wd * (cfg['bias_decay_mult']
                                              if is_bias else 1.0)
            params.append(group)
