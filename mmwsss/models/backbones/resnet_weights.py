"""Convert DeepLab / torchvision ResNet checkpoints to mmseg ``ResNet`` names.

:class:`~mmwsss.models.backbones.DeepLabResNet` is mmseg's ``ResNet`` (single 7×7
stem conv), so its parameters are named like torchvision's: ``conv1.weight``,
``bn1.*``, ``layer{s}.{b}.conv{1,2,3}.weight``, ``layer{s}.{b}.bn{1,2,3}.*`` and
``layer{s}.0.downsample.{0,1}.*`` (``s`` = 1–4, ``b`` 0-based; ``*`` = ``weight``,
``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``). Accepted
source layouts (any of them may be wrapped in ``{'state_dict': ...}`` or
``{'model': ...}``, and may carry a ``module.`` (DataParallel), ``model.``,
``backbone.``, ``base.`` or ``scale.`` prefix, e.g. ``module.base.``):

* **torchvision / mmseg / mmpretrain** names (identity mapping). ``fc.*``
  (ImageNet classifier) and ``head.*`` / ``neck.*`` / ``decode_head.*`` /
  ``auxiliary_head.*`` (other parts of an OpenMMLab model) are dropped. Note:
  torchvision's ResNets are *pytorch-style* (stride in the 3×3 conv); their weights
  load into the *caffe-style* :class:`DeepLabResNet` (same shapes) but were trained
  with the stride elsewhere; use ``style='pytorch'`` for them.
* **kazuto1011/deeplab-pytorch** (``libs/models/resnet.py`` / ``deeplabv2.py``; its
  ``MSC`` wrapper adds ``base.``, old versions ``scale.``): the stem
  ``layer1.conv1.conv.weight`` / ``layer1.conv1.bn.*`` → ``conv1.weight`` /
  ``bn1.*``; ``layer{2..5}.block{j}.{reduce,conv3x3,increase}.{conv,bn}.*`` →
  ``layer{1..4}.{j-1}.conv{1,2,3}.weight`` / ``bn{1,2,3}.*``;
  ``...block1.shortcut.{conv,bn}.*`` (old versions: ``proj``) →
  ``...0.downsample.{0,1}.*``. The DeepLab-v2 classifier ``aspp.c{i}.*`` (old
  versions ``aspp.stages.c{i}.*``) is dropped here and read by
  :func:`extract_deeplab_aspp`; the ResNet classifier ``fc.*`` is dropped.
* **rulixiang/deeplab-pytorch** ``DeepLabV2_ResNet101`` (used by VWL):
  ``layer1.conv1.{conv,batch_norm}.*`` (stem) and
  ``layer{2..5}.{j}.{conv1,conv2,conv3,shortcut}.{conv,batch_norm}.*`` (blocks
  0-based) → as above; its ``aspp.c{i}.*`` as for kazuto1011.

A source BN without ``num_batches_tracked`` (Caffe conversions, old PyTorch) gets a
zero one, so that the result is a complete mmseg state dict. Unknown keys and two
source keys for the same parameter raise a :class:`ResNetStateDictError` (a
``KeyError``) that lists them with the expected formats; completeness against a
model is checked by :func:`check_resnet_state_dict`.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .state_dict_utils import (format_names, rename_state_dict,
                               state_dict_diff, unwrap_state_dict)

__all__ = [
    'ResNetStateDictError', 'convert_deeplab_resnet_state_dict',
    'extract_deeplab_aspp', 'infer_resnet_stage_blocks', 'infer_resnet_depth',
    'check_resnet_state_dict', 'EXPECTED_FORMATS'
]


class ResNetStateDictError(KeyError):
    """A ``KeyError`` for a state dict that cannot be converted (readable message)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ''


#: One-line description of the accepted layouts (used in error messages).
EXPECTED_FORMATS = (
    'expected torchvision/mmseg names (`conv1.weight`, `bn1.*`, '
    '`layerS.B.convK.weight`, `layerS.B.bnK.*`, `layerS.0.downsample.{0,1}.*`), '
    'kazuto1011/deeplab-pytorch names (`layer1.conv1.{conv,bn}.*`, '
    '`layerS.blockB.{reduce,conv3x3,increase,shortcut}.{conv,bn}.*`, S = 2-5, '
    'B from 1) or rulixiang/deeplab-pytorch names (`layerS.B.{conv1,conv2,'
    'conv3,shortcut}.{conv,batch_norm}.*`, S = 2-5, B from 0), optionally '
    'under `module.`, `model.`, `backbone.`, `base.` or `scale.`')

_PREFIX = r'(?:module\.)?(?:model\.)?(?:backbone\.|base\.|scale\.)?'
_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
_BN_PARAMS = ('weight', 'bias', 'running_mean', 'running_var',
              'num_batches_tracked')

# torchvision / mmseg names: identity (after the prefix).
_BNP = '(?:' + _BN[1:-1] + ')'
_TV = re.compile(_PREFIX + r'(conv1\.weight|bn1\.' + _BNP + r'|layer[1-4]\.\d+\.'
                 r'(?:conv[123]\.weight|bn[123]\.' + _BNP + r'|downsample\.0\.'
                 r'weight|downsample\.1\.' + _BNP + r'))$')
# kazuto1011 / rulixiang stem.
_STEM = re.compile(_PREFIX + r'layer1\.conv1\.(?:conv\.(weight)|(?:bn|batch_norm)'
                   r'\.' + _BN + r')$')
# kazuto1011 blocks (1-based).
_KAZUTO = re.compile(_PREFIX + r'layer([2-5])\.block(\d+)\.'
                     r'(reduce|conv3x3|increase|shortcut|proj)\.'
                     r'(?:conv\.(weight)|bn\.' + _BN + r')$')
# rulixiang blocks (0-based).
_RULIXIANG = re.compile(_PREFIX + r'layer([2-5])\.(\d+)\.'
                        r'(conv1|conv2|conv3|shortcut)\.'
                        r'(?:conv\.(weight)|batch_norm\.' + _BN + r')$')
# Known non-backbone layers of the supported layouts: silently dropped.
_DROPPED = re.compile(
    _PREFIX + r'(?:fc\.|aspp\.|head\.|neck\.|decode_head\.|auxiliary_head\.)')

_KAZUTO_UNIT = {'reduce': 1, 'conv3x3': 2, 'increase': 3}
_RULIXIANG_UNIT = {'conv1': 1, 'conv2': 2, 'conv3': 3}

# ASPP (DeepLab-v2 classifier) names.
_ASPP = re.compile(_PREFIX + r'aspp\.(?:stages\.)?c(\d+)\.(weight|bias)$')
_ASPP_MMWSSS = re.compile(
    r'(?:module\.)?(?:model\.)?decode_head\.aspp\.(\d+)\.(weight|bias)$')
_ASPP_ANY = re.compile(_PREFIX + r'(?:decode_head\.)?aspp\.')


def _unit(stage: int, block: int, k: int, is_conv: bool, param: str) -> str:
    """mmseg name of conv/bn ``k`` (1-3, 0 = shortcut) of a block."""
    base = f'layer{stage}.{block}.'
    if k == 0:
        return base + ('downsample.0.weight' if is_conv else
                       f'downsample.1.{param}')
    return base + (f'conv{k}.weight' if is_conv else f'bn{k}.{param}')


def _target_name(key: str) -> Optional[str]:
    """The mmseg name for ``key``, ``''`` to drop it, ``None`` if unknown."""
    m = _TV.match(key)
    if m:
        return m.group(1)
    m = _STEM.match(key)
    if m:
        return 'conv1.weight' if m.group(1) else f'bn1.{m.group(2)}'
    m = _KAZUTO.match(key)
    if m and int(m.group(2)) >= 1:
        k = 0 if m.group(3) in ('shortcut', 'proj') else _KAZUTO_UNIT[m.group(3)]
        return _unit(int(m.group(1)) - 1, int(m.group(2)) - 1, k,
                     bool(m.group(4)), m.group(5))
    m = _RULIXIANG.match(key)
    if m:
        k = 0 if m.group(3) == 'shortcut' else _RULIXIANG_UNIT[m.group(3)]
        return _unit(int(m.group(1)) - 1, int(m.group(2)), k, bool(m.group(4)),
                     m.group(5))
    if _DROPPED.match(key):
        return ''
    return None


def _fmt(names: List[str], limit: int = 12) -> str:
    return format_names(names, limit)


_ORDER = {'conv1': 0, 'bn1': 1, 'conv2': 2, 'bn2': 3, 'conv3': 4, 'bn3': 5,
          'downsample': 6}


def _sort_key(name: str):
    """Network order: stem, then stage, block, unit, parameter."""
    parts = name.split('.')
    param = _BN_PARAMS.index(parts[-1]) if parts[-1] in _BN_PARAMS else 9
    if not parts[0].startswith('layer'):
        return (0, 0, _ORDER.get(parts[0], 9), 0, param)
    sub = int(parts[3]) if parts[2] == 'downsample' else 0
    return (int(parts[0][5:]), int(parts[1]), _ORDER.get(parts[2], 9), sub,
            param)


def convert_deeplab_resnet_state_dict(
        state_dict: Mapping) -> Dict[str, torch.Tensor]:
    """Map a ResNet state dict (torchvision, kazuto1011 or rulixiang DeepLab
    names) to mmseg ``ResNet`` / :class:`DeepLabResNet` parameter names.

    Args:
        state_dict (Mapping): the checkpoint's state dict, or a checkpoint dict that
            holds it under ``'state_dict'`` or ``'model'``.

    Returns:
        OrderedDict[str, Tensor]: the backbone tensors under mmseg names, in network
        order, with ``num_batches_tracked`` for every BN. Classifier / ASPP keys are
        not included (see :func:`extract_deeplab_aspp`).

    Raises:
        ResNetStateDictError: (a ``KeyError``) for unknown keys, duplicate sources
            or a state dict without backbone keys; the message lists them all
            with the expected formats.
        TypeError: ``state_dict`` is not a mapping.
    """
    state_dict = unwrap_state_dict(state_dict)
    converted, unknown, duplicates = rename_state_dict(state_dict,
                                                       _target_name)

    problems = []
    if unknown:
        hint = ''
        if any(re.match(_PREFIX + r'stem\.', k) for k in unknown):
            hint = (' (`stem.*` is the deep stem of ResNetV1c/V1d: build '
                    "type='ResNetV1c' for such a checkpoint, e.g. "
                    'open-mmlab://resnet101_v1c)')
        problems.append(f'unexpected keys: {_fmt(unknown)}{hint}')
    if duplicates:
        problems.append(f'duplicate keys: {_fmt(duplicates)}')
    if not converted and not problems:
        problems.append('no backbone keys found (only '
                        f'{_fmt(list(map(str, state_dict)) or ["nothing"])})')
    if problems:
        raise ResNetStateDictError(
            'not a ResNet state dict that convert_deeplab_resnet_state_dict '
            'understands: ' + '; '.join(problems) + '; ' + EXPECTED_FORMATS)

    # Caffe conversions / old PyTorch files have no num_batches_tracked.
    for name in list(converted):
        if name.endswith('.running_mean'):
            nbt = name[:-len('running_mean')] + 'num_batches_tracked'
            converted.setdefault(nbt, torch.tensor(0, dtype=torch.long))
    return OrderedDict((k, converted[k]) for k in sorted(converted,
                                                        key=_sort_key))


def extract_deeplab_aspp(state_dict: Mapping,
                         prefix: str = 'decode_head.') -> Dict[str, torch.Tensor]:
    """The DeepLab-v2 ASPP classifier of a kazuto1011 / rulixiang checkpoint.

    Maps ``aspp.c{i}.weight/bias`` (kazuto1011 current and rulixiang),
    ``aspp.stages.c{i}.*`` (kazuto1011 before 2019) and, idempotently, mmwsss's
    own ``decode_head.aspp.{i}.*`` to ``{prefix}aspp.{i}.*``, the names of
    :class:`~mmwsss.models.decode_heads.DeepLabV2Head` inside an
    ``EncoderDecoder``. The prefixes of :func:`convert_deeplab_resnet_state_dict`
    (``module.``, ``base.``, ...) are accepted; non-ASPP keys are ignored.

    Args:
        state_dict (Mapping): the checkpoint's state dict (or a checkpoint dict).
        prefix (str): prepended to ``aspp.{i}.*``. Default: ``'decode_head.'``.

    Returns:
        OrderedDict[str, Tensor]: ``{prefix}aspp.{i}.weight`` / ``.bias`` for
        ``i`` = 0 … n-1 (branch order kept), empty if the file has no ASPP.

    Raises:
        ResNetStateDictError: for ASPP keys of another layout (e.g. DeepLab-v3's
            ``aspp.stages.c0.conv.weight``), duplicates, a branch without weight or
            bias, or non-contiguous branch indices.
    """
    state_dict = unwrap_state_dict(state_dict)
    found: Dict[Tuple[int, str], torch.Tensor] = {}
    sources: Dict[Tuple[int, str], str] = {}
    bad, duplicates = [], []
    for key, value in state_dict.items():
        if not isinstance(key, str):
            continue
        m = _ASPP.match(key) or _ASPP_MMWSSS.match(key)
        if m is None:
            if _ASPP_ANY.match(key):
                bad.append(key)
            continue
        slot = (int(m.group(1)), m.group(2))
        if slot in found:
            duplicates.append(f'{sources[slot]!r} and {key!r}')
            continue
        found[slot] = value if isinstance(
            value, torch.Tensor) else torch.as_tensor(value)
        sources[slot] = key
    problems = []
    if bad:
        problems.append(f'ASPP keys of an unknown layout: {_fmt(bad)}')
    if duplicates:
        problems.append(f'duplicate keys: {_fmt(duplicates)}')
    branches = sorted({i for i, _ in found})
    if branches != list(range(len(branches))):
        problems.append(f'branch indices {branches} are not 0..n-1')
    incomplete = [f'c{i}.{p}' for i in branches for p in ('weight', 'bias')
                  if (i, p) not in found]
    if incomplete:
        problems.append(f'missing: {_fmt(incomplete)}')
    if problems:
        raise ResNetStateDictError(
            'cannot read the DeepLab-v2 ASPP classifier (expected '
            '`aspp.c{i}.{weight,bias}` or `aspp.stages.c{i}.{weight,bias}`): ' +
            '; '.join(problems))
    return OrderedDict((f'{prefix}aspp.{i}.{p}', found[(i, p)])
                       for i in branches for p in ('weight', 'bias'))


_BLOCK_KEY = re.compile(r'layer([1-4])\.(\d+)\.')


def infer_resnet_stage_blocks(state_dict: Mapping) -> Tuple[int, ...]:
    """Blocks per stage (``layer1``–``layer4``) of an mmseg-named ResNet state dict.

    A stage's count is its highest block index + 1 (0 if the stage is absent).
    """
    counts = [0, 0, 0, 0]
    for key in state_dict:
        m = _BLOCK_KEY.match(key) if isinstance(key, str) else None
        if m:
            s = int(m.group(1)) - 1
            counts[s] = max(counts[s], int(m.group(2)) + 1)
    return tuple(counts)


def infer_resnet_depth(state_dict: Mapping) -> Optional[int]:
    """ResNet depth (18, 34, 50, 101, 152) of an mmseg-named state dict, or None.

    Uses the blocks per stage and the block kind (``conv3`` = Bottleneck).
    """
    blocks = infer_resnet_stage_blocks(state_dict)
    bottleneck = any(
        isinstance(k, str) and re.match(r'layer[1-4]\.\d+\.conv3\.', k)
        for k in state_dict)
    table = ({(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}
             if bottleneck else {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34})
    return table.get(blocks)


def _depth_name(blocks: Tuple[int, ...], state_dict: Mapping) -> str:
    depth = infer_resnet_depth(state_dict)
    return f'{blocks}' + (f' = ResNet-{depth}' if depth else '')


def _group_blocks(keys: List[str]) -> str:
    """``['layer3.6.conv1.weight', ..., 'bn1.weight']`` → 'stem, layer3.6-22'."""
    stem = False
    per_stage: Dict[int, List[int]] = {}
    other = []
    for k in keys:
        m = _BLOCK_KEY.match(k)
        if m:
            per_stage.setdefault(int(m.group(1)), []).append(int(m.group(2)))
        elif k.split('.')[0] in ('conv1', 'bn1', 'stem'):
            stem = True
        else:
            other.append(k)
    parts = ['stem (conv1/bn1)'] if stem else []
    for s in sorted(per_stage):
        idx = sorted(set(per_stage[s]))
        runs, start = [], idx[0]
        for a, b in zip(idx, idx[1:] + [None]):
            if b != a + 1:
                runs.append(f'layer{s}.{start}' +
                            (f'-{a}' if a != start else ''))
                start = b
        parts.extend(runs)
    parts.extend(other)
    return ', '.join(parts)


def check_resnet_state_dict(state_dict: Mapping,
                            expected: Mapping,
                            name: str = 'the model') -> None:
    """Check a converted state dict against a model's, key by key and by shape.

    Args:
        state_dict (Mapping): converted (mmseg-named) tensors, e.g. the output of
            :func:`convert_deeplab_resnet_state_dict`.
        expected (Mapping): the model's ``state_dict()`` (shapes are read from it;
            a model on the ``meta`` device works).
        name (str): how to call the model in the message.

    Raises:
        ResNetStateDictError: missing / unexpected keys, named by block (e.g.
            ``layer3.6-22``) with both stage layouts (e.g. a ResNet-50 file for
            a ResNet-101); shape mismatches are listed too.
        ValueError: only shapes differ.
    """
    missing, unexpected, shapes = state_dict_diff(
        state_dict, expected,
        optional=lambda k: k.endswith('num_batches_tracked'))
    shapes = [f'{k}: checkpoint {a} vs model {b}' for k, a, b in shapes]
    if not (missing or unexpected or shapes):
        return
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys in '
                        f'{_group_blocks(missing)} (e.g. {missing[0]})')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys in '
                        f'{_group_blocks(unexpected)} (e.g. {unexpected[0]})')
    if shapes:
        problems.append(f'shape mismatches: {_fmt(shapes, 6)}')
    msg = f'the checkpoint does not fit {name}: ' + '; '.join(problems)
    if missing or unexpected:
        msg += ('; blocks per stage: checkpoint '
                f'{_depth_name(infer_resnet_stage_blocks(state_dict), state_dict)}'
                ', model '
                f'{_depth_name(infer_resnet_stage_blocks(expected), expected)}')
        raise ResNetStateDictError(msg)
    raise ValueError(msg)
