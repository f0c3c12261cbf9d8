"""tools/train.py, tools/test.py and tools/dist_train.sh on the toy dataset (CPU)."""
import os
import os.path as osp
import socket
import subprocess

import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO, run_env

CONFIG = osp.join(REPO, 'configs', 'toy', 'supervised_toy.py')


def _opts(toy_root, max_iters, **extra):
    opts = {
        'train_dataloader.dataset.data_root': toy_root,
        'val_dataloader.dataset.data_root': toy_root,
        'test_dataloader.dataset.data_root': toy_root,
        'train_dataloader.batch_size': 2,
        'train_cfg.max_iters': max_iters,
        'train_cfg.val_interval': 1000,
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1,
    }
    opts.update(extra)
    out = ['--cfg-options']
    for k, v in opts.items():
        out.append(f'{k}={v}')
    return out


def _run(args, cwd=REPO, timeout=600, env=None):
    p = subprocess.run(
        args, cwd=cwd, env=env or run_env(), capture_output=True, text=True,
        timeout=timeout)
    return p


def _ok(p):
    assert p.returncode == 0, p.stdout[-3000:] + '\n' + p.stderr[-5000:]
    return p


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def trained(toy_root, tmp_path_factory, python_exe):
    """Train 2 iterations, then resume from the work dir and continue to 4."""
    work = str(tmp_path_factory.mktemp('train'))
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in run_env()
    _ok(_run([python_exe, 'tools/train.py', CONFIG, '--work-dir', work] +
             _opts(toy_root, 2)))
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    first = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu')
    p = _ok(_run([python_exe, 'tools/train.py', CONFIG, '--work-dir', work,
                  '--resume'] + _opts(toy_root, 4)))
    return work, first, p


def test_resume_continues(trained):
    work, first, p = trained
    log = p.stdout + p.stderr
    assert 'resumed epoch: 0, iter: 2' in log
    ckpt = torch.load(osp.join(work, 'iter_4.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 4
    assert first['meta']['iter'] == 2
    # the optimizer state (SGD momentum) was carried over and then updated
    assert ckpt['optimizer']['state'] and first['optimizer']['state']
    # training went on from the resumed weights: they changed after iter 2
    key = 'decode_head.conv_seg.weight'
    assert not torch.equal(ckpt['state_dict'][key], first['state_dict'][key])
    # message hub history was restored (loss history spans both runs)
    hub = ckpt['message_hub']['log_scalars']['train/loss']
    assert hub._count_history.size >= 4 or hub.count >= 4


def test_test_tool_loads_checkpoint(trained, toy_root, python_exe):
    work, _, _ = trained
    metrics = osp.join(work, 'metrics.json')
    preds = osp.join(work, 'preds')
    p = _ok(_run([python_exe, 'tools/test.py', CONFIG,
                  osp.join(work, 'iter_4.pth'), '--work-dir', work,
                  '--metrics-out', metrics, '--out', preds,
                  '--cfg-options', f'test_dataloader.dataset.data_root={toy_root}']))
    assert 'mIoU' in p.stdout + p.stderr
    import json
    with open(metrics) as f:
        m = json.load(f)
    assert 0 <= m['mIoU'] <= 100
    # --out: one predicted label PNG per val image
    from mmwsss.utils.io import read_split_ids
    ids = read_split_ids(
        osp.join(toy_root, 'ImageSets', 'Segmentation', 'val.txt'))
    assert sorted(os.listdir(preds)) == sorted(i + '.png' for i in ids)


def test_test_tool_out_needs_an_iou_metric():
    import importlib.util

    from mmengine.config import Config
    spec = importlib.util.spec_from_file_location(
        'mmwsss_test_tool', osp.join(REPO, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = Config(dict(test_evaluator=[
        dict(type='MultiLabelMAPMetric'), dict(type='IoUMetric')]))
    tool.set_output_dir(cfg, 'out')
    assert cfg.test_evaluator[1]['output_dir'] == 'out'
    assert 'output_dir' not in cfg.test_evaluator[0]
    cfg = Config(dict(test_evaluator=dict(type='SeedIoUMetric')))
    with pytest.raises(ValueError, match='--out needs an IoUMetric'):
        tool.set_output_dir(cfg, 'out')


def test_num_classes_mismatch_is_reported(toy_root, tmp_path, python_exe):
    p = _run([python_exe, 'tools/train.py', CONFIG, '--work-dir',
              str(tmp_path)] + _opts(toy_root, 1) +
             ['model.decode_head.num_classes=5'])
    assert p.returncode != 0
    assert 'model.decode_head.num_classes' in p.stderr
    assert 'Set model.decode_head.num_classes=9' in p.stderr


def test_dist_train_two_cpu_processes(toy_root, tmp_path, python_exe):
    env = run_env()
    env['PYTHON'] = python_exe
    env['PORT'] = str(_free_port())
    work = str(tmp_path / 'ddp')
    p = _ok(_run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir',
                  work] + _opts(toy_root, 2, **{'train_cfg.val_interval': 2}),
                 env=env))
    log = p.stdout + p.stderr
    assert 'world_size: 2' in log or 'Distributed launcher: pytorch' in log
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    assert 'mIoU' in log


def test_resume_ignores_load_from(trained, toy_root, tmp_path, python_exe):
    """``--resume`` resumes the work dir's latest checkpoint even when ``load_from``
    is set (MMEngine's precedence resumed ``load_from``: another run's finished
    checkpoint, training nothing), and says which file it resumes."""
    other, _, _ = trained  # another run, finished at iteration 4
    work = str(tmp_path / 'mine')
    _ok(_run([python_exe, 'tools/train.py', CONFIG, '--work-dir', work] +
             _opts(toy_root, 2)))
    p = _ok(_run([python_exe, 'tools/train.py', CONFIG, '--work-dir', work,
                  '--resume'] + _opts(toy_root, 4, load_from=osp.join(
                      other, 'iter_4.pth'))))
    log = p.stdout + p.stderr
    assert f'--resume: resuming {osp.join(work, "iter_2.pth")}' in log
    assert 'ignoring load_from' in log
    assert 'resumed epoch: 0, iter: 2' in log
    assert osp.isfile(osp.join(work, 'iter_4.pth'))
    # --resume CHECKPOINT resumes that file
    p = _ok(_run([python_exe, 'tools/train.py', CONFIG, '--work-dir',
                  str(tmp_path / 'explicit'), '--resume',
                  osp.join(work, 'iter_2.pth')] + _opts(toy_root, 3)))
    assert 'resumed epoch: 0, iter: 2' in p.stdout + p.stderr


def test_apply_resume_without_checkpoint_says_so(tmp_path, monkeypatch):
    from mmwsss.utils import launch
    from mmwsss.utils.launch import apply_resume
    said = []
    monkeypatch.setattr(launch, 'print_log', lambda msg, **kw: said.append(msg))
    cfg = Config(dict(work_dir=str(tmp_path), load_from=None))
    apply_resume(cfg, 'auto')
    assert cfg.resume is False and cfg.load_from is None
    assert any('has no checkpoint yet' in m and 'from the beginning' in m
               for m in said), said
    # nothing to resume: load_from stays the initial weights (a fine-tuning run
    # started with --resume, as tools/analysis/compare_methods.py starts every run)
    cfg = Config(dict(work_dir=str(tmp_path), load_from='x.pth'))
    apply_resume(cfg, 'auto')
    assert cfg.resume is False and cfg.load_from == 'x.pth'
    assert "from load_from='x.pth' (initial weights)" in said[-1], said
    # a checkpoint in the work dir: it is resumed, load_from is ignored
    (tmp_path / 'iter_2.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    apply_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from is None
    assert any('ignoring load_from' in m for m in said), said
    with pytest.raises(FileNotFoundError, match='no such checkpoint'):
        apply_resume(cfg, str(tmp_path / 'nope.pth'))
    cfg = Config(dict(work_dir=str(tmp_path), load_from='x.pth'))
    apply_resume(cfg, None)
    assert cfg.resume is False and cfg.load_from == 'x.pth'


def test_test_tool_refuses_a_checkpoint_of_another_model(trained, toy_root, tmp_path,
                                                         python_exe):
    """A checkpoint that does not fit the evaluated model (here: a head with other
    classes) used to be loaded non-strictly: metrics of a random head, exit 0."""
    work, _, _ = trained
    ckpt = torch.load(osp.join(work, 'iter_4.pth'), map_location='cpu')
    for k in ('decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'):
        ckpt['state_dict'][k] = ckpt['state_dict'][k][:5]
    bad = str(tmp_path / 'five_classes.pth')
    torch.save(ckpt, bad)
    opts = ['--cfg-options', f'test_dataloader.dataset.data_root={toy_root}']
    p = _run([python_exe, 'tools/test.py', CONFIG, bad] + opts)
    assert p.returncode != 0
    assert 'five_classes.pth does not fit the model' in p.stderr
    assert 'decode_head.conv_seg.weight (5, ' in p.stderr
    not_ckpt = tmp_path / 'notes.pth'
    not_ckpt.write_text('not a checkpoint')
    p = _run([python_exe, 'tools/test.py', CONFIG, str(not_ckpt)] + opts)
    assert p.returncode != 0
    assert 'notes.pth: not a readable checkpoint' in p.stderr
