import math
import os.path as osp
from numbers import Number
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_gather_object, all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from mmwsss.registry import HOOKS


def _scalar(value) -> Optional[float]:
    """A logged value as a Python float; None for what is not a scalar."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        return float(value.detach().float().item())
    if isinstance(value, Number) and not isinstance(value, bool):
        return float(value)
    if hasattr(value, 'size') and hasattr(value, 'item') and value.size == 1:
        return float(value.item())  # NumPy scalars / 1-element arrays
    return None


def _batch_ids(data_batch, limit: int = 8) -> List[str]:
    """Image ids (or file names) of a training batch, for the error message."""
    if not isinstance(data_batch, dict):
        return []
    ids = []
    for ds in data_batch.get('data_samples', None) or []:
        meta = getattr(ds, 'metainfo', None) or {}
        name = meta.get('img_id') or (osp.basename(meta['img_path'])
                                      if meta.get('img_path') else None)
        if name is not None:
            ids.append(str(name))
    if len(ids) > limit:
        ids = ids[:limit] + ['...']
    return ids


class InvalidLossError(RuntimeError):
    """Training stopped at a NaN / inf loss (the message names the iteration)."""


@HOOKS.register_module()
class CheckInvalidLossHook(Hook):
    """Stop training as soon as a loss term is NaN or infinite.

    Like MMDetection's ``CheckInvalidLossHook``, but by default it checks **every**
    iteration (``interval=1``) and **every loss term** of the step's outputs (each
    key that contains ``'loss'``, as MMEngine's ``BaseModel.parse_losses`` sums
    them: the total ``loss`` and e.g. ``decode.loss_ce``, ``loss_cls``), not only
    the total. Other logged values (``acc_seg``, which MMSeg computes as NaN for a
    crop that is all ignore) are not checked.

    On a non-finite term it raises a ``RuntimeError`` naming the iteration (and
    the epoch for epoch-based loops), the non-finite terms with their values, the
    image ids of the batch, the last checkpoint and what to do (lower the learning
    rate or clip gradients, check the data and labels, resume from the last good
    checkpoint). The message is also logged at ERROR level so it reaches the
    work-dir log.

    Cost: none worth measuring. MMEngine's ``RuntimeInfoHook.after_train_iter``
    (priority VERY_HIGH, runs before this hook) already calls
    ``message_hub.update_scalar('train/<key>', value)`` on every entry of the
    outputs every iteration, and ``MessageHub._get_valid_value`` turns each tensor
    into a Python number with ``.item()``, i.e. the values are synchronised to the
    host each iteration anyway (mmengine 0.10.7, ``hooks/runtime_info_hook.py``,
    ``logging/message_hub.py``); this hook's ``.item()`` calls read values that
    are already computed. In distributed runs one 1-element all-reduce per check
    tells every rank whether any rank saw a non-finite loss (the gradients were
    all-reduced, so every rank's weights are broken, and the CheckpointHook of
    rank 0 must not save them), and all ranks raise together instead of the
    healthy ones waiting for the failed one.

    Priority ``'HIGH'`` (30): after ``RuntimeInfoHook`` (VERY_HIGH, 10) and before
    every hook that uses or saves the result of the step: ``IterTimerHook`` and
    mmwsss's ``OAAHook`` (NORMAL, 50; it would accumulate NaN attention),
    ``LoggerHook`` (BELOW_NORMAL, 60), ``ParamSchedulerHook`` (LOW, 70) and above
    all ``CheckpointHook`` (VERY_LOW, 90): no checkpoint of the failing iteration
    (or a later one) is written. The optimizer has already stepped with the
    non-finite gradients when ``after_train_iter`` runs, so the weights in memory
    are lost; resume from the last checkpoint. (A step whose loss is finite but
    whose update makes the weights non-finite is caught at the next iteration, so
    the checkpoint of that one step can hold broken weights.)

    :class:`~mmwsss.engine.runner.WSSSRunner` (``runner_type='WSSSRunner'``, the default
    of ``configs/_base_/default_runtime.py``) adds it with ``interval=1`` to every
    run; a ``CheckInvalidLossHook`` listed in ``custom_hooks`` (or ``default_hooks``)
    replaces that one, with its settings.

    Args:
        interval (int): check every ``interval`` training iterations. Defaults to
            1. ``0`` turns the check off:
            ``custom_hooks = [dict(type='CheckInvalidLossHook', interval=0)]``.
    """
    priority = 'HIGH'

    def __init__(self, interval: int = 1) -> None:
        if not isinstance(interval, int) or isinstance(interval, bool) or \
                interval < 0:
            raise ValueError('CheckInvalidLossHook: interval must be an int '
                             f'>= 0 (0 turns the check off), got {interval!r}')
        self.interval = interval

    @staticmethod
    def invalid_terms(outputs) -> Dict[str, float]:
        """The loss terms of ``outputs`` (keys containing ``'loss'``) that are
        NaN or infinite, with their values."""
        bad = {}
        if not isinstance(outputs, dict):
            return bad
        for key, value in outputs.items():
            if 'loss' not in str(key):
                continue
            v = _scalar(value)
            if v is not None and not math.isfinite(v):
                bad[str(key)] = v
        return bad

    def _where(self, runner, batch_idx: int) -> str:
        it = runner.iter + 1  # the iteration being finished (iter_<it>.pth)
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            n = len(loop.dataloader) if hasattr(loop, 'dataloader') else '?'
            return (f'iteration {it} (epoch {runner.epoch + 1}, iteration '
                    f'{batch_idx + 1} of {n} in the epoch)')
        return f'iteration {it} of {runner.max_iters}'

    @staticmethod
    def _last_checkpoint(runner) -> Optional[str]:
        path = osp.join(runner.work_dir, 'last_checkpoint')
        if not osp.isfile(path):
            return None
        try:
            with open(path) as f:
                last = f.read().strip()
        except OSError:
            return None
        return last or None

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if self.interval <= 0 or not self.every_n_train_iters(
                runner, self.interval):
            return
        bad = self.invalid_terms(outputs)
        world = get_world_size()
        if world > 1:
            flag = torch.tensor([1 if bad else 0], dtype=torch.int32)
            all_reduce(flag, op='max')
            if not int(flag.item()):
                return
            per_rank = all_gather_object(bad)
        elif not bad:
            return
        else:
            per_rank = [bad]

        terms = []
        for rank, rank_bad in enumerate(per_rank):
            for key, value in rank_bad.items():
                where = f' (rank {rank})' if world > 1 else ''
                terms.append(f'{key}={value}{where}')
        ids = _batch_ids(data_batch)
        last = self._last_checkpoint(runner)
        lr = None
        try:
            lrs = runner.optim_wrapper.get_lr()
            lr = {k: v[:4] for k, v in lrs.items()} if isinstance(lrs, dict) \
                else None
        except Exception:  # noqa: BLE001 - the message only
            lr = None
        msg = (
            f'CheckInvalidLossHook: non-finite loss at {self._where(runner, batch_idx)}'
            f': {", ".join(terms)}. Training stopped before this iteration\'s '
            'checkpoint, so no checkpoint holds these weights. '
            + (f'Batch image ids: {", ".join(ids)}. ' if ids else '') +
            (f'Learning rate(s) now: {lr}. ' if lr else '') +
            'What to do: lower the learning rate (optim_wrapper.optimizer.lr) '
            'or clip gradients (optim_wrapper.clip_grad=dict(max_norm=...)); '
            'check the data and labels (label values beyond num_classes or '
            '255, empty / all-ignore label maps, corrupt images, wrong '
            'data_root / seg_map_path); then ' +
            (f'resume from the last good checkpoint {last} (tools/train.py '
             'CONFIG --resume, or load_from=CKPT).' if last else
             f'start again: no checkpoint was saved yet in {runner.work_dir}.'))
        print_log(msg, logger='current', level=40)  # logging.ERROR
        raise InvalidLossError(msg)
