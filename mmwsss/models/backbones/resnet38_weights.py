"""The ResNet-38d layout and the conversion of its checkpoints to mmwsss names.

:class:`~mmwsss.models.backbones.ResNet38d` keeps the parameter names of the official
PyTorch ResNet-38d of PSA / EDAM (jiwoon-ahn/psa and allenwu97/EDAM
``network/resnet38d.py``), so the conversion is mostly a matter of removing wrappers
and dropping non-backbone layers. Names (``*`` = ``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``)::

    conv1a.weight
    b{2,3,4}, b{2,3}_{1,2}, b4_{1..5}, b5, b5_{1,2}    (basic blocks)
        .bn_branch2a.*  .conv_branch2a.weight  .bn_branch2b1.*  .conv_branch2b1.weight
        .conv_branch1.weight                     (b2, b3, b4, b5 only: shape change)
    b6, b7                                         (bottleneck blocks)
        .bn_branch2a.*  .conv_branch2a.weight  .bn_branch2b1.*  .conv_branch2b1.weight
        .bn_branch2b2.* .conv_branch2b2.weight .conv_branch1.weight
    bn7.*

Accepted sources (optionally wrapped in ``{'state_dict': ...}`` / ``{'model': ...}``):

* **PSA / EDAM PyTorch names** (the table above): what PSA's
  ``network.resnet38d.convert_mxnet_to_torch`` returns for the ImageNet weights
  ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``, and the training checkpoints of PSA
  (``resnet38_cls`` / ``resnet38_aff``), SEAM and EDAM (``torch.save(
  model.module.state_dict())``). A ``module.`` (DataParallel) prefix is removed. If
  some keys start with ``backbone.`` (an mmwsss / OpenMMLab model checkpoint), only
  those are used, prefix removed, and every other key (``decode_head.*``,
  ``head.*``, ...) is dropped. The heads of the official models are dropped:
  PSA/SEAM ``fc8``, ``f8_3``, ``f8_4``, ``f8_5``, ``f9``; EDAM ``mask_layer``,
  ``d_d``, ``embedding`` (incl. the positional buffer ``embedding.position.pe``),
  ``trans_list``, ``fc_list``; the MXNet classifier ``linear1000``.
* **raw MXNet names** of that ``.params`` file, as a mapping of names to arrays /
  tensors (e.g. ``{k: v.asnumpy() for k, v in mxnet.nd.load(path).items()}``), with
  or without the ``arg:`` / ``aux:`` prefixes: ``conv1a_weight``;
  ``res{S}{a|b{i}}_branch{1,2a,2b1,2b2}_weight`` → ``b{S}`` / ``b{S}_{i}``
  ``.conv_branch*.weight``; ``bn{S}{a|b{i}}_branch{2a,2b1,2b2}_{gamma,beta,
  moving_mean,moving_var}`` → ``.bn_branch*.{weight,bias,running_mean,running_var}``;
  ``bn7_*`` → ``bn7.*``; ``linear1000_*`` dropped. This is the mapping of
  ``convert_mxnet_to_torch``.

A source without ``num_batches_tracked`` (MXNet conversions) gets zeros. Every
other key of the layout is required, with its shape; unknown keys, missing keys,
duplicates and shape mismatches raise one :class:`ResNet38dStateDictError` (a
``ValueError``) that names them all.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np
import torch

from .state_dict_utils import format_names, unwrap_state_dict

__all__ = [
    'ResNet38dStateDictError', 'ResNet38dBlockSpec', 'RESNET38D_BLOCKS',
    'RESNET38D_STAGES', 'resnet38d_param_shapes', 'convert_resnet38d_state_dict'
]


class ResNet38dStateDictError(ValueError):
    """A state dict that cannot be converted to / loaded into ResNet-38d."""


class ResNet38dBlockSpec(NamedTuple):
    """One residual block of ResNet-38d (pre-activation: BN → ReLU → conv).

    ``kind`` is ``'basic'`` (3×3 ``in→mid`` with ``stride`` / ``first_dilation``,
    then 3×3 ``mid→out`` with ``dilation``) or ``'bottleneck'`` (1×1 ``in→out/4``
    with ``stride``, 3×3 ``out/4→out/2`` with ``dilation``, 1×1 ``out/2→out``;
    ``mid`` unused). ``dropout_index`` selects the entry of ``ResNet38d``'s
    ``dropout`` argument (``None``: no dropout layers).
    """
    name: str
    kind: str
    in_channels: int
    mid_channels: int
    out_channels: int
    stride: int = 1
    first_dilation: int = 1
    dilation: int = 1
    dropout_index: Optional[int] = None

    @property
    def has_shortcut_conv(self) -> bool:
        """Whether the shortcut is a 1×1 conv (``conv_branch1``)."""
        return self.in_channels != self.out_channels or self.stride != 1


def _basic(name, cin, mid, cout, stride=1, first_dilation=None, dilation=1):
    return ResNet38dBlockSpec(
        name, 'basic', cin, mid, cout, stride,
        dilation if first_dilation is None else first_dilation, dilation)


#: The blocks in network order (output stride 8: b5 dilation 2, b6/b7 dilation 4).
RESNET38D_BLOCKS: Tuple[ResNet38dBlockSpec, ...] = (
    _basic('b2', 64, 128, 128, stride=2),
    _basic('b2_1', 128, 128, 128),
    _basic('b2_2', 128, 128, 128),
    _basic('b3', 128, 256, 256, stride=2),
    _basic('b3_1', 256, 256, 256),
    _basic('b3_2', 256, 256, 256),
    _basic('b4', 256, 512, 512, stride=2),
    *(_basic(f'b4_{i}', 512, 512, 512) for i in range(1, 6)),
    _basic('b5', 512, 512, 1024, first_dilation=1, dilation=2),
    _basic('b5_1', 1024, 512, 1024, dilation=2),
    _basic('b5_2', 1024, 512, 1024, dilation=2),
    ResNet38dBlockSpec('b6', 'bottleneck', 1024, 512, 2048, 1, 4, 4, 0),
    ResNet38dBlockSpec('b7', 'bottleneck', 2048, 1024, 4096, 1, 4, 4, 1),
)

#: Module names of the 7 stages (stage 6 ends with ``bn7``).
RESNET38D_STAGES: Tuple[Tuple[str, ...], ...] = (
    ('conv1a', ),
    ('b2', 'b2_1', 'b2_2'),
    ('b3', 'b3_1', 'b3_2'),
    ('b4', 'b4_1', 'b4_2', 'b4_3', 'b4_4', 'b4_5'),
    ('b5', 'b5_1', 'b5_2'),
    ('b6', ),
    ('b7', 'bn7'),
)

_BN_PARAMS = ('weight', 'bias', 'running_mean', 'running_var',
              'num_batches_tracked')


def _bn_shapes(prefix: str, c: int) -> List[Tuple[str, tuple]]:
    return [(f'{prefix}.{p}', () if p == 'num_batches_tracked' else (c, ))
            for p in _BN_PARAMS]


def resnet38d_param_shapes() -> 'OrderedDict[str, tuple]':
    """Every state-dict key of ResNet-38d with its shape, in network order (the
    order of ``ResNet38d().state_dict()``)."""
    out: List[Tuple[str, tuple]] = [('conv1a.weight', (64, 3, 3, 3))]
    for b in RESNET38D_BLOCKS:
        n, cin, cout = b.name, b.in_channels, b.out_channels
        if b.kind == 'basic':
            mid = b.mid_channels
            out += _bn_shapes(f'{n}.bn_branch2a', cin)
            out.append((f'{n}.conv_branch2a.weight', (mid, cin, 3, 3)))
            out += _bn_shapes(f'{n}.bn_branch2b1', mid)
            out.append((f'{n}.conv_branch2b1.weight', (cout, mid, 3, 3)))
        else:
            q, h = cout // 4, cout // 2
            out += _bn_shapes(f'{n}.bn_branch2a', cin)
            out.append((f'{n}.conv_branch2a.weight', (q, cin, 1, 1)))
            out += _bn_shapes(f'{n}.bn_branch2b1', q)
            out.append((f'{n}.conv_branch2b1.weight', (h, q, 3, 3)))
            out += _bn_shapes(f'{n}.bn_branch2b2', h)
            out.append((f'{n}.conv_branch2b2.weight', (cout, h, 1, 1)))
        if b.has_shortcut_conv:
            out.append((f'{n}.conv_branch1.weight', (cout, cin, 1, 1)))
    out += _bn_shapes('bn7', RESNET38D_BLOCKS[-1].out_channels)
    return OrderedDict(out)


# ------------------------------------------------------------------ names
_BNP = r'(?:weight|bias|running_mean|running_var|num_batches_tracked)'
# PSA / EDAM PyTorch names (loose: exact membership is checked afterwards).
_TORCH = re.compile(r'(?:conv1a\.weight|bn7\.' + _BNP +
                    r'|b\d+(?:_\d+)?\.(?:conv_branch\w+\.weight|bn_branch\w+\.' +
                    _BNP + r'))$')
# Heads of the official PSA / SEAM / EDAM models (first name component).
_HEADS = frozenset({
    'fc8', 'f8_3', 'f8_4', 'f8_5', 'f9', 'dropout7',  # PSA, SEAM
    'mask_layer', 'd_d', 'embedding', 'trans_list', 'fc_list',  # EDAM
    'linear1000',  # MXNet ImageNet classifier
})
# Raw MXNet names (``arg:`` / ``aux:`` as in ``mxnet.nd.save`` files).
_MX_PREFIX = r'(?:arg:|aux:)?'
_MX_BRANCH = re.compile(_MX_PREFIX + r'(res|bn)(\d)(?:a|b(\d+))_branch'
                        r'(1|2a|2b1|2b2)_(weight|gamma|beta|(?:moving_)?mean|'
                        r'(?:moving_)?var)$')
_MX_CONV1A = re.compile(_MX_PREFIX + r'conv1a_weight$')
_MX_BN7 = re.compile(_MX_PREFIX + r'bn7_(gamma|beta|(?:moving_)?mean|'
                     r'(?:moving_)?var)$')
_MX_LINEAR = re.compile(_MX_PREFIX + r'linear1000_\w+$')
_MX_BN = {'gamma': 'weight', 'beta': 'bias', 'mean': 'running_mean',
          'moving_mean': 'running_mean', 'var': 'running_var',
          'moving_var': 'running_var'}

EXPECTED_FORMATS = (
    'expected the PSA/EDAM ResNet-38d names (`conv1a.weight`, '
    '`b2.bn_branch2a.weight`, `b4_5.conv_branch2b1.weight`, '
    '`b7.conv_branch2b2.weight`, `bn7.running_var`, ...; optionally under '
    '`module.` and/or `backbone.`) or the raw MXNet names of '
    'ilsvrc-cls_rna-a1_cls1000_ep-0001.params (`res2a_branch1_weight`, '
    '`bn2a_branch2a_gamma`, `bn7_moving_var`, ...)')


def _mx_target(key: str) -> Optional[str]:
    """The PyTorch name of a raw MXNet key, ``''`` to drop it, None if unknown."""
    m = _MX_BRANCH.match(key)
    if m:
        kind, stage, sub, branch, param = m.groups()
        block = f'b{stage}' + (f'_{int(sub)}' if sub else '')
        if kind == 'res':
            return (f'{block}.conv_branch{branch}.weight'
                    if param == 'weight' else None)
        if param == 'weight' or branch == '1':
            return None  # BN layers have gamma/beta; branch1 has no BN
        return f'{block}.bn_branch{branch}.{_MX_BN[param]}'
    if _MX_CONV1A.match(key):
        return 'conv1a.weight'
    m = _MX_BN7.match(key)
    if m:
        return f'bn7.{_MX_BN[m.group(1)]}'
    if _MX_LINEAR.match(key):
        return ''
    return None


def _torch_target(key: str) -> Optional[str]:
    """The name of a PSA/EDAM PyTorch key (prefixes removed), ``''`` to drop it,
    None if unknown."""
    if _TORCH.match(key):
        return key
    if key.split('.', 1)[0] in _HEADS:
        return ''
    return None


def _as_tensor(key: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, 'asnumpy'):  # an mxnet NDArray
        value = value.asnumpy()
    if isinstance(value, (np.ndarray, np.generic, int, float, list, tuple)):
        return torch.as_tensor(np.asarray(value))
    raise ResNet38dStateDictError(
        f'{key!r} holds a {type(value).__name__}, not a tensor or array')


def _strip_wrappers(state: Mapping) -> Tuple[Dict[str, object], List[str]]:
    """Remove ``module.``; keep only ``backbone.*`` (prefix removed) when present."""
    keys, bad = {}, []
    for k, v in state.items():
        if not isinstance(k, str):
            bad.append(repr(k))
            continue
        keys[k[len('module.'):] if k.startswith('module.') else k] = v
    if any(k.startswith('backbone.') for k in keys):
        keys = {k[len('backbone.'):]: v
                for k, v in keys.items() if k.startswith('backbone.')}
    return keys, bad


def convert_resnet38d_state_dict(state_dict: Mapping) -> Dict[str, torch.Tensor]:
    """Map a ResNet-38d checkpoint (PSA / EDAM PyTorch names, or the raw MXNet
    names) to :class:`~mmwsss.models.backbones.ResNet38d` names.

    Args:
        state_dict (Mapping): the state dict, or a checkpoint dict that holds it
            under ``'state_dict'`` or ``'model'``. Values: tensors, numpy arrays
            or MXNet NDArrays.

    Returns:
        OrderedDict[str, Tensor]: every key of
        :func:`resnet38d_param_shapes`, in network order, head layers dropped,
        ``num_batches_tracked`` added where the source has none.

    Raises:
        ResNet38dStateDictError: (a ``ValueError``) unknown / unexpected keys,
            missing keys, duplicates (e.g. ``b2.conv_branch1.weight`` and
            ``res2a_branch1_weight``) or shape mismatches, all named.
        TypeError: ``state_dict`` is not a mapping.
    """
    state, bad = _strip_wrappers(unwrap_state_dict(state_dict))
    expected = resnet38d_param_shapes()
    converted: Dict[str, torch.Tensor] = {}
    sources: Dict[str, str] = {}
    unexpected, duplicates, not_tensors = list(bad), [], []
    for key, value in state.items():
        target = _torch_target(key)
        if target is None:
            target = _mx_target(key)
        if target == '':
            continue
        if target is None or target not in expected:
            unexpected.append(key)
            continue
        if target in converted:
            duplicates.append(f'{sources[target]!r} and {key!r} -> {target}')
            continue
        try:
            converted[target] = _as_tensor(key, value)
        except ResNet38dStateDictError as e:
            not_tensors.append(str(e))
            continue
        sources[target] = key

    for name, shape in expected.items():
        if name.endswith('num_batches_tracked') and name not in converted:
            if name[:-len('num_batches_tracked')] + 'running_mean' in converted:
                converted[name] = torch.tensor(0, dtype=torch.long)
    missing = [k for k in expected if k not in converted]
    shapes = [f'{k}: checkpoint {tuple(v.shape)} vs ResNet38d {expected[k]}'
              for k, v in converted.items()
              if tuple(v.shape) != tuple(expected[k])]

    problems = []
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: '
                        f'{format_names(unexpected, 12)}')
    if missing:
        problems.append(f'{len(missing)} missing keys: '
                        f'{format_names(missing, 12)}')
    if duplicates:
        problems.append(f'duplicate keys: {format_names(duplicates, 6)}')
    if not_tensors:
        problems.append(format_names(not_tensors, 6))
    if shapes:
        problems.append(f'shape mismatches: {format_names(shapes, 6)}')
    if problems:
        raise ResNet38dStateDictError(
            'not a ResNet-38d state dict: ' + '; '.join(problems) + '; ' +
            EXPECTED_FORMATS)
    return OrderedDict((k, converted[k]) for k in expected)
