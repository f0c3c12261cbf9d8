import sys
from typing import List, Optional, Tuple

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor

from mmwsss.registry import OPTIM_WRAPPER_CONSTRUCTORS


def _norm_types() -> Tuple[type, ...]:
    """Module classes whose ``weight`` is a normalisation scale ("norm weight")."""
    types = [
        nn.modules.batchnorm._BatchNorm,  # BN1d/2d/3d, SyncBN, MMEngine's BNXd
        nn.modules.instancenorm._InstanceNorm,
        nn.GroupNorm,
        nn.LayerNorm,  # and subclasses, e.g. MMPretrain's LayerNorm2d
        nn.LocalResponseNorm,
    ]
    if hasattr(nn, 'RMSNorm'):
        types.append(nn.RMSNorm)
    # MMCV's own SyncBatchNorm (mmcv.ops, not a _BatchNorm): only if a model uses it
    # (importing mmcv.ops needs the compiled ops)
    sync_bn = sys.modules.get('mmcv.ops.sync_bn')
    if sync_bn is not None and hasattr(sync_bn, 'SyncBatchNorm'):
        types.append(sync_bn.SyncBatchNorm)
    return tuple(types)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LRMultOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """DeepLab / OAA learning-rate multipliers: new layers train faster.

    Every parameter gets its own group with ``lr = base_lr * mult`` and
    ``weight_decay = base_wd * decay_mult``, where

    ======================  =================================  ========================
    parameter               lr mult key (default)              decay mult key (default)
    ======================  =================================  ========================
    pretrained weight       ``weight_lr_mult`` (1)             1
    pretrained bias         ``bias_lr_mult`` (2)               ``bias_decay_mult`` (0)
    pretrained norm weight  ``norm_lr_mult`` (as weights)      ``norm_decay_mult`` (1)
    new-layer weight        ``new_weight_lr_mult`` (10)        1
    new-layer bias          ``new_bias_lr_mult`` (20)          ``bias_decay_mult`` (0)
    new-layer norm weight   ``new_norm_lr_mult`` (as weights)  ``norm_decay_mult`` (1)
    ======================  =================================  ========================

    The defaults are the OAA / DeepLab recipe (Caffe: biases at twice the lr and not
    decayed, new layers at ten times). ``norm_lr_mult`` / ``new_norm_lr_mult`` default
    to ``None`` = the value of ``weight_lr_mult`` / ``new_weight_lr_mult``;
    ``norm_decay_mult`` (default 1) scales the weight decay of norm weights.

    Parameter kinds:

    * **bias**: a parameter registered under the name ``bias`` (of any module:
      convolutions, linear layers, and the shift of normalisation layers);
    * **norm weight**: the ``weight`` (scale) of a normalisation layer, recognised by
      the module's type while walking ``named_modules``: ``_BatchNorm`` (BatchNorm,
      SyncBatchNorm, MMEngine's ``_BatchNormXd``), ``_InstanceNorm``, ``GroupNorm``,
      ``LayerNorm`` (and subclasses), ``RMSNorm``, MMCV's ``SyncBatchNorm`` (the
      norms MMCV's ``build_norm_layer`` makes: ``BN``, ``SyncBN``, ``GN``, ``LN``,
      ``IN``); other types can be added by overriding :meth:`norm_types`;
    * **weight**: everything else (convolution / linear weights, embeddings, other
      1-D parameters such as layer-scale factors).

    The names of the parameters play no part in telling a norm weight from a bias
    (a LayerNorm scale is 1-D but is not a bias: transformer recipes train it like a
    weight).

    "New layers" are the parameters whose name (relative to the model) starts with one
    of ``paramwise_cfg.new_layers`` (default ``('head', 'neck')``; e.g. ``'decode_head'``
    for a segmentor). Unknown ``paramwise_cfg`` keys raise a ``KeyError``. Example::

        optim_wrapper = dict(
            optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=2e-4),
            constructor='LRMultOptimWrapperConstructor',
            paramwise_cfg=dict(new_layers=('head', ), new_weight_lr_mult=10,
                               new_bias_lr_mult=20, bias_lr_mult=2,
                               norm_decay_mult=0.0))
    """
    DEFAULTS = dict(
        new_layers=('head', 'neck'),
        weight_lr_mult=1.0,
        bias_lr_mult=2.0,
        norm_lr_mult=None,
        new_weight_lr_mult=10.0,
        new_bias_lr_mult=20.0,
        new_norm_lr_mult=None,
        bias_decay_mult=0.0,
        norm_decay_mult=1.0)

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
        if cfg['norm_lr_mult'] is None:
            cfg['norm_lr_mult'] = cfg['weight_lr_mult']
        if cfg['new_norm_lr_mult'] is None:
            cfg['new_norm_lr_mult'] = cfg['new_weight_lr_mult']
        self.mult_cfg = cfg
        # the parent validates paramwise_cfg against its own keys: give it none
        super().__init__(optim_wrapper_cfg, None)
        self.paramwise_cfg = dict(cfg)  # non-empty: __call__ uses add_params

    def _is_new(self, name: str) -> bool:
        return any(name == k or name.startswith(k + '.')
                   for k in self.mult_cfg['new_layers'])

    def norm_types(self) -> Tuple[type, ...]:
        """Module classes whose ``weight`` is a norm weight."""
        return _norm_types()

    @staticmethod
    def param_kind(param_name: str, in_norm: bool) -> str:
        """``'bias'``, ``'norm'`` or ``'weight'`` for a parameter registered as
        ``param_name`` directly on a module (``in_norm``: the module is a norm)."""
        if param_name == 'bias':
            return 'bias'
        if in_norm and param_name == 'weight':
            return 'norm'
        return 'weight'

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module=None) -> None:
        cfg = self.mult_cfg
        wd = self.base_wd
        norm_types = self.norm_types()
        lr_key = dict(weight='weight_lr_mult', bias='bias_lr_mult',
                      norm='norm_lr_mult')
        decay = dict(weight=1.0, bias=cfg['bias_decay_mult'],
                     norm=cfg['norm_decay_mult'])
        seen = set()
        # the order of module.named_parameters(): modules in named_modules order,
        # each module's own parameters, shared parameters once
        for mod_name, mod in module.named_modules(prefix=prefix):
            in_norm = isinstance(mod, norm_types)
            for p_name, param in mod.named_parameters(recurse=False):
                if id(param) in seen:
                    continue
                seen.add(id(param))
                name = f'{mod_name}.{p_name}' if mod_name else p_name
                kind = self.param_kind(p_name, in_norm)
                key = lr_key[kind]
                if self._is_new(name):
                    key = 'new_' + key
                group = dict(params=[param], lr=self.base_lr * cfg[key])
                if wd is not None:
                    group['weight_decay'] = wd * decay[kind]
                params.append(group)
