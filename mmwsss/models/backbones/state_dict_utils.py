"""Helpers shared by the checkpoint-name converters (VGG-16, ResNet)."""
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch

__all__ = [
    'unwrap_state_dict', 'format_names', 'rename_state_dict', 'state_dict_diff'
]


def unwrap_state_dict(checkpoint: Mapping) -> Mapping:
    """The state dict of a checkpoint (under ``'state_dict'`` or ``'model'``, or the
    mapping itself)."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError('expected a state dict (a mapping of names to tensors), '
                        f'got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            return inner
    return checkpoint


def format_names(names: List[str], limit: int = 20) -> str:
    """``a, b, c, ... (N more)``."""
    shown = ', '.join(names[:limit])
    return shown + (f', ... ({len(names) - limit} more)'
                    if len(names) > limit else '')


def rename_state_dict(
    state_dict: Mapping, target_name: Callable[[str], Optional[str]]
) -> Tuple[Dict[str, torch.Tensor], List[str], List[str]]:
    """Rename every key with ``target_name`` (``None`` = unknown key, ``''`` = drop).

    Returns:
        ``(converted, unknown, duplicates)``: the renamed tensors (first source wins),
        the keys ``target_name`` did not know, and ``'a' and 'b' -> target`` lines
        for keys that map to the same name.
    """
    converted: Dict[str, torch.Tensor] = {}
    sources: Dict[str, str] = {}
    unknown, duplicates = [], []
    for key, value in state_dict.items():
        if not isinstance(key, str):
            unknown.append(repr(key))
            continue
        target = target_name(key)
        if target is None:
            unknown.append(key)
            continue
        if not target:
            continue
        if target in converted:
            duplicates.append(f'{sources[target]!r} and {key!r} -> {target}')
            continue
        converted[target] = value if isinstance(
            value, torch.Tensor) else torch.as_tensor(value)
        sources[target] = key
    return converted, unknown, duplicates


def state_dict_diff(source: Mapping, expected: Mapping,
                    optional: Callable[[str], bool] = lambda k: False):
    """How a checkpoint's tensors ``source`` differ from a model's ``expected``.

    Returns ``(missing, unexpected, shapes)``: expected keys absent from ``source``
    (except those ``optional`` accepts), source keys the model does not have, and
    ``(key, source shape, expected shape)`` of keys present in both with other
    shapes."""
    missing = [k for k in expected if k not in source and not optional(k)]
    unexpected = [k for k in source if k not in expected]
    shapes = [(k, tuple(source[k].shape), tuple(expected[k].shape))
              for k in source
              if k in expected and hasattr(source[k], 'shape')
              and tuple(source[k].shape) != tuple(expected[k].shape)]
    return missing, unexpected, shapes
