"""Base of hooks whose online state is keyed by image id (``docs/extending.md``)."""
import os.path as osp
from typing import Any, List, Optional

from mmengine.dist import all_gather_object, barrier, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import BaseLoop

from mmwsss.utils.model_wrappers import unwrap_model


class StatefulHook(Hook):
    """A hook that keeps online state across a training run (OAA's cumulative maps,
    a memory bank, ...): saved in checkpoints, restored on ``--resume``, complete on
    every rank under DistributedDataParallel, exported after training.

    A subclass sets :attr:`state_key` and :attr:`state_version` and implements

    * :meth:`state_dict` / :meth:`load_state_dict`: the state as plain types, numpy
      arrays and tensors (it is written into the checkpoint under
      ``checkpoint[state_key]`` with ``version`` added, and must load under torch's
      ``weights_only`` loader);
    * :meth:`collect_changes` / :meth:`apply_changes`: what this rank changed since
      the last synchronisation (picklable) and how to install the lists of all ranks
      (this one included; a key changed on several ranks must be merged);
    * optionally :meth:`export` (with ``export_dir``) and :meth:`state_summary`.

    The base class does the rest: it synchronises the ranks at the end of every epoch
    and before an iteration-based checkpoint, saves the state in every checkpoint,
    restores it only when the run resumes (a ``load_from`` fine-tune starts empty; a
    test / export run ignores it), refuses a state written by a newer version, and
    exports after training (each rank writes its share, then a barrier).

    Args:
        export_dir (str, optional): folder for :meth:`export` after training,
            relative to ``work_dir`` unless absolute; None: no export.
    """
    state_key: str = ''
    state_version: int = 1
    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW) at the epoch end

    def __init__(self, export_dir: Optional[str] = None):
        if not self.state_key:
            raise TypeError(f'{type(self).__name__} must set `state_key`')
        self.export_dir = export_dir

    # ------------------------------------------------------- to implement
    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def collect_changes(self) -> Any:
        """What this rank changed since the last call (and forget it)."""
        raise NotImplementedError

    def apply_changes(self, per_rank: List[Any]) -> None:
        """Install the :meth:`collect_changes` results of all ranks."""
        raise NotImplementedError

    def export(self, out_dir: str) -> int:
        """Write this rank's share of the state to ``out_dir``; returns the number
        of files written."""
        raise NotImplementedError(f'{type(self).__name__} has no export')

    def state_summary(self) -> str:
        """A short description of the state for the log."""
        return 'state'

    # ------------------------------------------------------------ helpers
    @staticmethod
    def unwrapped_model(runner):
        return unwrap_model(runner.model)

    def synchronize(self) -> None:
        """Merge the changes of every rank (collective: call it on all ranks)."""
        changes = self.collect_changes()
        _, world = get_dist_info()
        if world == 1:
            return
        self.apply_changes(all_gather_object(changes))

    @staticmethod
    def gather_counts(counts: dict) -> dict:
        """Sum a dict of numbers over the ranks (collective)."""
        _, world = get_dist_info()
        if world == 1:
            return dict(counts)
        out = dict.fromkeys(counts, 0)
        for st in all_gather_object(counts):
            for k in out:
                out[k] += st[k]
        return out

    @staticmethod
    def checkpoint_due(runner) -> bool:
        """An iteration-based CheckpointHook saves after this iteration."""
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and not hook.by_epoch and \
                    hook.interval > 0 and (
                        (runner.iter + 1) % hook.interval == 0 or
                        runner.iter + 1 == runner.max_iters):
                return True
        return False

    # --------------------------------------------------------- life cycle
    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.checkpoint_due(runner):
            self.synchronize()

    def after_train_epoch(self, runner) -> None:
        self.synchronize()

    def after_train(self, runner) -> None:
        if self.export_dir is None:
            return
        out_dir = self.export_dir
        if not osp.isabs(out_dir):
            out_dir = osp.join(runner.work_dir, out_dir)
        n = self.export(out_dir)
        barrier()
        runner.logger.info(
            f'{type(self).__name__}: exported {self.state_summary()} to {out_dir} '
            f'({n} files written by this rank)')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(self.state_dict())
        state['version'] = self.state_version
        checkpoint[self.state_key] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.state_key not in checkpoint:
            return
        name = type(self).__name__
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            # a test / CAM-export run (runner.test() loads `load_from` without
            # building the train loop): it trains nothing, the state is not used
            return
        if not getattr(runner, '_resume', False):
            runner.logger.info(
                f'{name}: the checkpoint holds `{self.state_key}` but this run '
                'does not resume (load_from): starting with an empty state')
            return
        state = checkpoint[self.state_key]
        version = int(state.get('version', 1))
        if version > self.state_version:
            raise ValueError(
                f'{name}: `{self.state_key}` in the checkpoint has version '
                f'{version}, newer than this mmwsss ({self.state_version}): '
                'update mmwsss to resume it')
        self.load_state_dict(state)
        runner.logger.info(
            f'{name}: restored {self.state_summary()} from the checkpoint')
