"""Reseed the random generators of training from (seed, epoch / iteration, rank)."""
import random

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmwsss.registry import HOOKS

_EPOCH, _ITER = 0, 1


def derived_seed(seed: int, kind: int, step: int, rank: int) -> int:
    """A 32-bit seed from ``(seed, kind, step, rank)`` (NumPy ``SeedSequence``:
    neighbouring steps give unrelated streams)."""
    entropy = [int(seed) % 2**32, int(kind), int(step), int(rank)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and
    every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@HOOKS.register_module()
class ReseedHook(Hook):
    """Make ``--resume`` continue a training run exactly when the run draws
    random numbers in the training process (dropout, random augmentation in the
    main process).

    MMEngine seeds the generators once, when the runner starts, and a resumed
    run seeds them again: the dropout masks (and, with ``num_workers=0``, the
    augmentations) after the resumed checkpoint then repeat those of the run's
    start instead of continuing the interrupted run. This hook seeds Python's
    ``random``, NumPy and torch from ``(runner.seed, epoch, rank)`` before every
    training epoch (before its data loader starts) and from ``(runner.seed,
    iteration, rank)`` before every training iteration, so the random numbers of
    an iteration depend only on the seed, the iteration and the rank -- not on
    what ran before. A run resumed from a checkpoint then draws what the
    uninterrupted run drew (tested with GAIN's VGG-16 head, whose fc6 / fc7 have
    dropout: ``tests/test_tools/test_gain_configs.py``).

    Loader workers are seeded by MMEngine (``seed``, rank and worker id, the same
    in every epoch); they continue exactly only if they start anew each epoch:
    ``persistent_workers=False`` (or ``num_workers=0``). The ranks get different
    streams (as MMEngine's ``diff_rank_seed=True``).

    Args:
        by_iter (bool): also reseed before every iteration (needed for dropout and
            for checkpoints saved inside an epoch). Default True.
    """
    priority = 'VERY_HIGH'

    def __init__(self, by_iter: bool = True):
        self.by_iter = bool(by_iter)

    def before_train_epoch(self, runner) -> None:
        seed_all(derived_seed(runner.seed, _EPOCH, runner.epoch, get_rank()))

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self.by_iter:
            seed_all(derived_seed(runner.seed, _ITER, runner.iter, get_rank()))
