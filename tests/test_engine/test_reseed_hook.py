"""ReseedHook: the random numbers of a training iteration depend only on the seed,
the epoch / iteration and the rank (what makes ``--resume`` exact with dropout; the
end-to-end check is tests/test_tools/test_gain_configs.py)."""
import random
from types import SimpleNamespace

import numpy as np
import torch

from mmwsss.engine.hooks import ReseedHook
from mmwsss.engine.hooks.reseed_hook import derived_seed


def _draws():
    return (random.random(), float(np.random.rand()), float(torch.rand(())),
            float(torch.nn.functional.dropout(torch.ones(8), 0.5).sum()))


def test_draws_depend_on_the_step_only():
    hook = ReseedHook()
    runner = SimpleNamespace(seed=7, epoch=3, iter=41)
    torch.rand(100), np.random.rand(5)  # some history
    hook.before_train_iter(runner, batch_idx=0)
    first = _draws()
    torch.manual_seed(123), random.seed(5)  # another history
    hook.before_train_iter(runner, batch_idx=0)
    assert _draws() == first
    runner.iter = 42
    hook.before_train_iter(runner, batch_idx=1)
    assert _draws() != first
    hook.before_train_epoch(runner)
    epoch_draws = _draws()
    torch.rand(10)
    hook.before_train_epoch(runner)
    assert _draws() == epoch_draws != first
    # by_iter=False leaves the iterations alone
    torch.manual_seed(0)
    ReseedHook(by_iter=False).before_train_iter(runner, batch_idx=0)
    torch.manual_seed(0)
    expected = torch.rand(())
    torch.manual_seed(0)
    ReseedHook(by_iter=False).before_train_iter(runner, batch_idx=0)
    assert torch.rand(()) == expected


def test_derived_seeds_differ_by_seed_kind_step_and_rank():
    seeds = {derived_seed(s, k, n, r) for s in (0, 1) for k in (0, 1)
             for n in (0, 1, 2) for r in (0, 1)}
    assert len(seeds) == 24
    assert all(0 <= s < 2**32 for s in seeds)
    assert derived_seed(2**40 + 3, 0, 0, 0) == derived_seed(3, 0, 0, 0)
