"""CheckInvalidLossHook: unit checks, its priority, every config's runner has it
(WSSSRunner adds it; tests/test_engine/test_wsss_runner.py), and a toy
training whose loss becomes non-finite stops before that iteration's checkpoint."""
import glob
import math
import os.path as osp
import re
import subprocess
import sys
from types import SimpleNamespace
from unittest import mock

import pytest
import torch

from tests.conftest import REPO, run_env

HOOK = 'CheckInvalidLossHook'


def _runner(it=4, epoch=0, max_iters=10, loop=None, work_dir='/nonexistent'):
    return SimpleNamespace(
        iter=it, epoch=epoch, max_iters=max_iters,
        train_loop=loop if loop is not None else object(),
        work_dir=work_dir,
        optim_wrapper=SimpleNamespace(get_lr=lambda: {'lr': [0.01]}))


def _hook(**kw):
    from mmwsss.engine.hooks import CheckInvalidLossHook
    return CheckInvalidLossHook(**kw)


def _outputs(**terms):
    return {k: torch.tensor(v) for k, v in terms.items()}


# ------------------------------------------------------------------ unit
def test_finite_losses_pass():
    hook = _hook()
    hook.after_train_iter(_runner(), 4, None, _outputs(
        loss=1.5, **{'decode.loss_ce': 1.2, 'aux.loss_ce': 0.3}))
    hook.after_train_iter(_runner(), 4, None, None)
    # a logged value that is not a loss may be NaN (MMSeg's acc_seg of a crop
    # that is all ignore): not checked
    hook.after_train_iter(_runner(), 4, None, _outputs(
        loss=0.5, **{'decode.acc_seg': float('nan')}))


def test_nan_in_one_term_names_term_and_iteration(tmp_path):
    with open(tmp_path / 'last_checkpoint', 'w') as f:
        f.write(str(tmp_path / 'iter_4.pth'))
    samples = [SimpleNamespace(metainfo=dict(img_id='toy_train_00003')),
               SimpleNamespace(metainfo=dict(img_path='/x/img_7.jpg'))]
    with pytest.raises(RuntimeError) as e:
        _hook().after_train_iter(
            _runner(it=4, work_dir=str(tmp_path)), 4,
            dict(data_samples=samples),
            _outputs(loss=1.0, **{'decode.loss_ce': float('nan'),
                                  'decode.loss_dice': 0.5}))
    msg = str(e.value)
    assert 'iteration 5 of 10' in msg  # runner.iter is 0-based: iter_5.pth
    assert 'decode.loss_ce=nan' in msg
    assert 'decode.loss_dice' not in msg and 'loss=1.0' not in msg
    assert 'toy_train_00003' in msg and 'img_7.jpg' in msg
    assert 'lower the learning rate' in msg and 'resume' in msg
    assert 'iter_4.pth' in msg  # the last good checkpoint


def test_inf_total_and_epoch_based_message():
    from mmengine.runner import EpochBasedTrainLoop
    loop = mock.Mock(spec=EpochBasedTrainLoop)
    loop.dataloader = list(range(8))
    with pytest.raises(RuntimeError) as e:
        _hook().after_train_iter(
            _runner(it=13, epoch=1, loop=loop), 5, None,
            _outputs(loss=float('inf'), loss_cls=float('-inf')))
    msg = str(e.value)
    assert 'iteration 14 (epoch 2, iteration 6 of 8 in the epoch)' in msg
    assert 'loss=inf' in msg and 'loss_cls=-inf' in msg
    assert 'no checkpoint was saved yet' in msg


def test_plain_numbers_interval_and_registry():
    from mmengine.hooks import Hook

    from mmwsss.registry import HOOKS
    hook = HOOKS.build(dict(type=HOOK))
    assert isinstance(hook, Hook) and hook.interval == 1
    with pytest.raises(RuntimeError, match='loss_x=nan'):
        hook.after_train_iter(_runner(), 0, None, dict(loss_x=math.nan))
    # interval=3: iterations 3, 6, ... (1-based) only; 0 turns it off
    bad = _outputs(loss=float('nan'))
    _hook(interval=3).after_train_iter(_runner(it=3), 0, None, bad)
    with pytest.raises(RuntimeError):
        _hook(interval=3).after_train_iter(_runner(it=5), 0, None, bad)
    _hook(interval=0).after_train_iter(_runner(it=5), 0, None, bad)
    with pytest.raises(ValueError, match='interval'):
        _hook(interval=-1)


def test_priority_between_runtime_info_and_checkpoint():
    from mmengine.hooks import (CheckpointHook, IterTimerHook, LoggerHook,
                                ParamSchedulerHook, RuntimeInfoHook)
    from mmengine.runner import get_priority

    from mmwsss.engine.hooks import OAAHook
    p = get_priority(_hook().priority)
    assert get_priority(RuntimeInfoHook.priority) < p
    for later in (CheckpointHook, LoggerHook, ParamSchedulerHook,
                  IterTimerHook, OAAHook):
        assert p < get_priority(later.priority), later


def _ddp_worker(rank, port, queue):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=2)
    try:
        value = float('nan') if rank == 1 else 0.5
        try:
            _hook().after_train_iter(_runner(it=6), 6, None,
                                     _outputs(loss=value))
            queue.put((rank, None))
        except RuntimeError as e:
            queue.put((rank, str(e)))
        # finite everywhere: no rank raises
        _hook().after_train_iter(_runner(it=7), 7, None, _outputs(loss=0.5))
        queue.put((rank, 'finite ok'))
    finally:
        dist.destroy_process_group()


def test_ddp_one_rank_non_finite_stops_every_rank():
    """Only rank 1's loss is NaN: both ranks raise (rank 0 runs the
    CheckpointHook), and the message names the rank."""
    import multiprocessing as mp
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, port, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in range(4)]
    for p in procs:
        p.join(timeout=30)
    assert all(p.exitcode == 0 for p in procs)
    errors = {r: m for r, m in results if m != 'finite ok'}
    assert sorted(errors) == [0, 1] and all(errors.values()), results
    for msg in errors.values():
        assert 'iteration 7 of 10' in msg and 'loss=nan (rank 1)' in msg
        assert 'rank 0' not in msg
    assert sorted(r for r, m in results if m == 'finite ok') == [0, 1]


# ------------------------------------------------------------------ configs
CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if f'{osp.sep}_base_{osp.sep}' not in p)


def _hooks_of(cfg):
    """The CheckInvalidLossHook entries the config's runner registers: with
    ``runner_type='WSSSRunner'`` (configs/_base_/default_runtime.py) the runner adds
    it unless the config lists one."""
    from mmwsss.engine.hooks import CheckInvalidLossHook
    from mmwsss.engine.runner import with_default_custom_hooks
    default_hooks = cfg.get('default_hooks') or {}
    custom = list(cfg.get('custom_hooks') or [])
    if cfg.get('runner_type') == 'WSSSRunner':
        custom = with_default_custom_hooks(custom, default_hooks)
    hooks = list(default_hooks.values()) + custom
    return [h for h in hooks if isinstance(h, dict)
            and h.get('type') in (HOOK, f'mmwsss.{HOOK}', CheckInvalidLossHook)]


@pytest.mark.parametrize('config', CONFIGS)
def test_every_config_has_the_hook(config):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, config))
    found = _hooks_of(cfg)
    assert len(found) == 1, (config, found)
    assert found[0].get('interval', 1) == 1


def test_configs_build_the_hook_in_their_scope():
    """The Runner builds hooks with MMEngine's root registry in the config's
    default scope; mmseg:: bases tag their dicts with _scope_='mmseg'."""
    from mmengine.config import Config
    from mmengine.registry import HOOKS, DefaultScope

    import mmwsss.engine.hooks  # noqa: F401  (registers the hook)
    from mmwsss.engine.hooks import CheckInvalidLossHook
    for config in ('configs/toy/supervised_toy.py',
                   'configs/deeplab/deeplabv3plus_r101_voc12aug_pseudo.py'):
        cfg = Config.fromfile(osp.join(REPO, config))
        (found, ) = _hooks_of(cfg)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            assert isinstance(HOOKS.build(dict(found)), CheckInvalidLossHook)


# ------------------------------------------------------------------ training
def test_training_with_exploding_loss_stops_before_its_checkpoint(
        toy_root, tmp_path):
    """AdamW with lr=1e30 makes the weights huge after the first step, so the
    loss of the second iteration is NaN / inf. Checkpoint interval 1: iter_1.pth
    is written, the failing iteration's and later ones are not."""
    work = str(tmp_path / 'work')
    config = osp.join(REPO, 'configs', 'toy', 'supervised_toy.py')
    opts = {
        'train_dataloader.dataset.data_root': toy_root,
        'val_dataloader.dataset.data_root': toy_root,
        'test_dataloader.dataset.data_root': toy_root,
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_cfg.max_iters': 5,
        'train_cfg.val_interval': 1000,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.logger.interval': 1,
        'optim_wrapper.optimizer.lr': 1e30,
    }
    args = [sys.executable, 'tools/train.py', config, '--work-dir', work,
            '--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]
    p = subprocess.run(args, cwd=REPO, env=run_env(), capture_output=True,
                       text=True, timeout=300)
    log = p.stdout + p.stderr
    assert p.returncode != 0, 'training went on with a non-finite loss:\n' + \
        log[-3000:]
    m = re.search(r'CheckInvalidLossHook: non-finite loss at iteration (\d+) '
                  r'of 5: (.*?)\. Training stopped', p.stderr)
    assert m, p.stderr[-5000:]
    bad_iter = int(m.group(1))
    assert re.search(r'loss\S*=(nan|inf|-inf)', m.group(2)), m.group(2)
    assert 'lower the learning rate' in p.stderr
    saved = sorted(int(re.search(r'iter_(\d+)\.pth$', f).group(1))
                   for f in glob.glob(osp.join(work, 'iter_*.pth')))
    assert saved == list(range(1, bad_iter)), (bad_iter, saved)
    assert not glob.glob(osp.join(work, '*.tmp'))
    if saved:
        ckpt = torch.load(osp.join(work, f'iter_{saved[-1]}.pth'),
                          map_location='cpu', weights_only=False)
        assert ckpt['meta']['iter'] == saved[-1]
