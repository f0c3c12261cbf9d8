"""Convert VGG-16 checkpoints to :class:`~mmwsss.models.backbones.DeepLabVGG16` names.

:class:`DeepLabVGG16` keeps torchvision's layer indices, so its 26 parameters are
``features.{i}.weight`` / ``features.{i}.bias`` with ``i`` in
``(0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)`` (conv1_1 ... conv5_3). Accepted
source layouts (any of them may be wrapped in ``{'state_dict': ...}`` or
``{'model': ...}``, and may carry a ``module.`` (DataParallel), ``backbone.`` or
``model.`` prefix):

* **torchvision** ``vgg16``: ``features.{i}.weight`` (identity mapping);
  ``classifier.*`` is dropped. The same names are used by the official OAA code
  (PengtaoJiang/OAA-PyTorch ``models/vgg.py``; its ``extra_convs.*`` are dropped) and
  by wangleihitcs/DeepLab-V1-PyTorch (``features.32/35/38`` = fc6/fc7/fc8 dropped);
* **Caffe-style** names of DeepLab / OAA / psa conversions: ``conv1_1.weight`` ...
  ``conv5_3.bias``, optionally as ``features.conv1_1.weight``; ``fc6*``, ``fc7*`` and
  ``fc8*`` (e.g. ``fc8_voc12``) are dropped;
* **rulixiang/deeplab-pytorch** ``DeepLabV1_LargeFOV``: ``block_{s}.conv{j}.*``
  (= ``conv{s}_{j}``); ``conv6/7/8.*`` are dropped.

Only the backbone's 13 convolutions are returned. Any other key, a missing
convolution, or two source keys for the same parameter raise a
:class:`VGGStateDictError` (a ``KeyError``) that lists the offending names.

:func:`convert_vgg16_fc_state_dict` maps the same files to the ImageNet fully
connected layers fc6 / fc7 of :class:`~mmwsss.models.heads.VGGFCHead`
(torchvision ``classifier.0`` / ``classifier.3``, Caffe-style ``fc6`` / ``fc7``).
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch

from .state_dict_utils import (format_names, rename_state_dict,
                               unwrap_state_dict)

__all__ = [
    'VGG16_CONV_INDICES', 'VGG16_CONV_NAMES', 'VGGStateDictError',
    'convert_vgg16_state_dict', 'convert_vgg16_fc_state_dict'
]


class VGGStateDictError(KeyError):
    """A ``KeyError`` for a state dict that cannot be converted (readable message)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ''

#: (stage, number of convs) of VGG-16, stages numbered from 1 as in Caffe.
_STAGE_DEPTHS = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
#: Caffe-style names in order: conv1_1, conv1_2, ..., conv5_3.
VGG16_CONV_NAMES: Tuple[str, ...] = tuple(
    f'conv{s}_{j}' for s, n in _STAGE_DEPTHS for j in range(1, n + 1))
#: torchvision ``vgg16().features`` indices of those convolutions.
VGG16_CONV_INDICES: Tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24,
                                       26, 28)
_CAFFE_TO_INDEX = dict(zip(VGG16_CONV_NAMES, VGG16_CONV_INDICES))

_PREFIX = r'(?:module\.)?(?:model\.)?(?:backbone\.)?'
_TORCHVISION = re.compile(_PREFIX + r'features\.(\d+)\.(weight|bias)$')
_CAFFE = re.compile(_PREFIX + r'(?:features\.)?(conv\d_\d)\.(weight|bias)$')
_BLOCK = re.compile(_PREFIX + r'block_(\d)\.conv(\d)\.(weight|bias)$')
# Known non-backbone layers of the supported layouts: silently dropped.
_DROPPED = re.compile(
    _PREFIX + r'(?:classifier\.|extra_convs\.|features\.(?:32|35|38)\.'
    r'|(?:features\.)?fc[678]|conv[678]\.)')


def _target_name(key: str):
    """The DeepLabVGG16 name for ``key``, ``''`` to drop it, ``None`` if unknown."""
    m = _TORCHVISION.match(key)
    if m and int(m.group(1)) in VGG16_CONV_INDICES:
        return f'features.{m.group(1)}.{m.group(2)}'
    m = _CAFFE.match(key)
    if m and m.group(1) in _CAFFE_TO_INDEX:
        return f'features.{_CAFFE_TO_INDEX[m.group(1)]}.{m.group(2)}'
    m = _BLOCK.match(key)
    if m:
        name = f'conv{m.group(1)}_{m.group(2)}'
        if name in _CAFFE_TO_INDEX:
            return f'features.{_CAFFE_TO_INDEX[name]}.{m.group(3)}'
    if _DROPPED.match(key):
        return ''
    return None


def _fmt(names: List[str], limit: int = 20) -> str:
    return format_names(names, limit)


def convert_vgg16_state_dict(state_dict: Mapping) -> Dict[str, torch.Tensor]:
    """Map a VGG-16 state dict (torchvision, Caffe-style or DeepLab names) to
    :class:`DeepLabVGG16` parameter names.

    Args:
        state_dict (Mapping): the checkpoint's state dict, or a checkpoint dict that
            holds it under ``'state_dict'`` or ``'model'``.

    Returns:
        OrderedDict[str, Tensor]: ``features.{i}.weight`` / ``features.{i}.bias`` for
        the 13 convolutions, in network order.

    Raises:
        VGGStateDictError: (a ``KeyError``) for unknown keys, missing
            convolutions or duplicate sources; the message lists them all.
    """
    state_dict = unwrap_state_dict(state_dict)
    converted, unknown, duplicates = rename_state_dict(state_dict,
                                                       _target_name)

    expected = [
        f'features.{i}.{p}' for i in VGG16_CONV_INDICES
        for p in ('weight', 'bias')
    ]
    missing = [k for k in expected if k not in converted]
    problems = []
    if unknown:
        problems.append(f'unexpected keys: {_fmt(unknown)}')
    if duplicates:
        problems.append(f'duplicate keys: {_fmt(duplicates)}')
    if missing:
        names = {f'features.{i}': c for c, i in _CAFFE_TO_INDEX.items()}
        problems.append('missing keys: ' + _fmt([
            f'{k} ({names[k.rsplit(".", 1)[0]]})' for k in missing
        ]))
    if problems:
        raise VGGStateDictError(
            'not a VGG-16 state dict that convert_vgg16_state_dict understands '
            '(torchvision `features.N.*`, Caffe-style `convS_J.*` or '
            'DeepLab `block_S.convJ.*` names): ' + '; '.join(problems))
    return OrderedDict((k, converted[k]) for k in expected)


# ------------------------------------------------------------- fc6 / fc7
# torchvision ``vgg16().classifier``: 0 = fc6, 3 = fc7, 6 = the ImageNet fc8.
_TV_FC = re.compile(_PREFIX + r'classifier\.(\d+)\.(weight|bias)$')
_TV_FC_NAMES = {'0': 'fc6', '3': 'fc7', '6': ''}
_CAFFE_FC = re.compile(_PREFIX + r'(?:features\.)?(fc6|fc7)\.(weight|bias)$')


def _fc_target_name(key: str):
    """The VGGFCHead name for ``key``: ``fc6.*`` / ``fc7.*``, ``''`` for a known
    layer of a VGG-16 file that is not fc6 / fc7 (convolutions, fc8, DeepLab's
    convolutional fc layers), ``None`` if unknown."""
    m = _TV_FC.match(key)
    if m:
        name = _TV_FC_NAMES.get(m.group(1))
        return None if name is None else (name and f'{name}.{m.group(2)}')
    m = _CAFFE_FC.match(key)
    if m:
        return f'{m.group(1)}.{m.group(2)}'
    return '' if _target_name(key) is not None else None


def convert_vgg16_fc_state_dict(state_dict: Mapping
                                ) -> Dict[str, torch.Tensor]:
    """The ImageNet fc6 / fc7 of a VGG-16 state dict, named as
    :class:`~mmwsss.models.heads.VGGFCHead`'s layers.

    torchvision's ``classifier.0`` / ``classifier.3`` become ``fc6`` / ``fc7``;
    Caffe-style ``fc6.*`` / ``fc7.*`` keep their names, and a convolutional form
    (fc6 as a 7x7 convolution ``(4096, 512, 7, 7)``, fc7 as a 1x1 one) is
    flattened in the (channel, row, column) order of ``torch.flatten`` after the
    7x7 pooling, which is the order of the fully connected weights. The
    convolutions and the 1000-class fc8 are dropped (the head's fc8 is new).
    Prefixes and wrappers as :func:`convert_vgg16_state_dict`.

    Returns:
        OrderedDict[str, Tensor]: ``fc6.weight``, ``fc6.bias``, ``fc7.weight``,
        ``fc7.bias``.

    Raises:
        VGGStateDictError: unknown keys, a missing fc6 / fc7 tensor (e.g. the
            PyTorch DeepLab-LargeFOV layouts, whose ``features.32`` / ``conv6``
            are other, dilated layers; a Caffe-style file of such layers gives
            tensors of other shapes, which :class:`VGGFCHead` reports),
            duplicate sources or a weight that is not 2-d / 4-d.
    """
    state_dict = unwrap_state_dict(state_dict)
    converted, unknown, duplicates = rename_state_dict(state_dict,
                                                       _fc_target_name)
    expected = [f'{n}.{p}' for n in ('fc6', 'fc7') for p in ('weight', 'bias')]
    missing = [k for k in expected if k not in converted]
    problems = []
    if unknown:
        problems.append(f'unexpected keys: {_fmt(unknown)}')
    if duplicates:
        problems.append(f'duplicate keys: {_fmt(duplicates)}')
    if missing:
        problems.append(f'missing keys: {_fmt(missing)} (torchvision '
                        '`classifier.0` / `classifier.3` or Caffe-style '
                        '`fc6` / `fc7`)')
    out = OrderedDict()
    for k in expected:
        if k not in converted:
            continue
        v = converted[k]
        if k.endswith('.weight'):
            if v.dim() == 4:
                v = v.reshape(v.shape[0], -1)
            elif v.dim() != 2:
                problems.append(f'{k} has shape {tuple(v.shape)}: expected a '
                                'fully connected (2-d) or convolutional (4-d) '
                                'weight')
        out[k] = v
    if problems:
        raise VGGStateDictError(
            'not a VGG-16 state dict with ImageNet fc6 / fc7 that '
            'convert_vgg16_fc_state_dict understands: ' + '; '.join(problems))
    return out
