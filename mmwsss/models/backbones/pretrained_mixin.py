"""Shared ``Pretrained`` handling of the backbones whose checkpoints need a name
conversion (DeepLab VGG-16, DeepLab ResNet)."""
import copy
from collections import defaultdict
from typing import Callable, Dict, List, Optional

from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.runner import CheckpointLoader


class ConvertedPretrainedMixin:
    """``init_weights`` for a backbone that loads its ``Pretrained`` init_cfg through
    its own :meth:`load_pretrained` (key conversion + strict loading) instead of
    MMEngine's ``PretrainedInit``.

    Non-``Pretrained`` init_cfg entries are applied by MMEngine first, then the
    checkpoint is loaded; the initialisation log records the load. A subclass
    implements ``load_pretrained(checkpoint, prefix=None)`` and may override
    :meth:`_check_pretrained` to refuse a configuration (e.g. a reduced width).
    """

    def _init_cfg_list(self) -> List[dict]:
        if not self.init_cfg:
            return []
        cfgs = self.init_cfg
        return list(cfgs) if isinstance(cfgs, (list, tuple)) else [cfgs]

    def _pretrained_cfgs(self) -> List[dict]:
        return [
            c for c in self._init_cfg_list()
            if c.get('type') in ('Pretrained', 'PretrainedInit', PretrainedInit)
        ]

    def _check_pretrained(self) -> None:
        """Raise if this configuration cannot load a pretrained checkpoint."""

    def init_weights(self) -> None:
        name = type(self).__name__
        pretrained = self._pretrained_cfgs()
        if not pretrained or getattr(self, '_is_init', False):
            super().init_weights()
            return
        if len(pretrained) > 1:
            raise ValueError(f'{name}: more than one Pretrained init_cfg: '
                             f'{pretrained}')
        self._check_pretrained()
        cfg = pretrained[0]
        if not cfg.get('checkpoint'):
            raise ValueError(f'{name}: the Pretrained init_cfg needs '
                             f'`checkpoint`, got {cfg}')
        # Mirror BaseModule's top-level bookkeeping so that the initialisation
        # log records the pretrained load (BaseModule would dump it before).
        top_level = not hasattr(self, '_params_init_info')
        if top_level:
            info = defaultdict(dict)
            for param in self.parameters():
                info[param]['init_info'] = (
                    'The value is the same before and after calling '
                    f'`init_weights` of {name} ')
                info[param]['tmp_mean_value'] = param.data.mean().cpu()
            for m in self.modules():
                m._params_init_info = info
        original = self.init_cfg
        others = [c for c in self._init_cfg_list() if c not in pretrained]
        self.init_cfg = copy.deepcopy(others) or None
        try:
            super().init_weights()
            self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'))
            update_init_info(
                self,
                init_info=f'Loaded from {cfg["checkpoint"]} by '
                f'{name}.init_weights (Pretrained)')
            if top_level:
                self._dump_init_info()
        finally:
            self.init_cfg = original
            if top_level:
                for m in self.modules():
                    if hasattr(m, '_params_init_info'):
                        del m._params_init_info

    def _read_state_dict(self, checkpoint: str,
                         prefix: Optional[str] = None) -> Dict:
        """The state dict of a checkpoint file (``state_dict`` unwrapped), keeping
        only the keys under ``prefix`` (prefix removed)."""
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
        if prefix:
            pre = prefix if prefix.endswith('.') else prefix + '.'
            picked = {
                k[len(pre):]: v
                for k, v in state.items() if k.startswith(pre)
            }
            if not picked:
                raise KeyError(f'{type(self).__name__}: no key of {checkpoint!r} '
                               f'starts with prefix {prefix!r}')
            state = picked
        return state

    def _load_converted(self, checkpoint: str, prefix: Optional[str],
                        convert: Callable[[Dict], Dict], label: str) -> None:
        """Read ``checkpoint`` (keys under ``prefix``), convert its names with
        ``convert`` (which may also check them) and load the result strictly; a
        conversion error is re-raised with the file name in front, and the load is
        logged as ``label``."""
        state = self._read_state_dict(checkpoint, prefix)
        try:
            converted = convert(state)
        except (KeyError, ValueError, TypeError) as e:
            raise type(e)(f'{checkpoint}: {e}') from e
        self.load_state_dict(converted, strict=True)
        print_log(f'{label}: loaded weights from {checkpoint}', logger='current')
