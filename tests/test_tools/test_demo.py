"""A shortened `make demo` (DEMO_FAST=1: 48 toy images, short schedules) runs the
whole pipeline end to end with the standard tools and writes summary.json (keys and
value ranges checked) and overview.png; a second run resumes (skips finished work)."""
import json
import os
import os.path as osp
import shutil
import subprocess

from tests.conftest import REPO, run_env


def _demo(tmp_path, python_exe, timeout=1500, **env_vars):
    """Run tools/demo.sh with its work dir and toy data under ``tmp_path``."""
    env = run_env()
    env.update(PYTHON=python_exe, DEMO_WORK_DIR=str(tmp_path / 'work'),
               DEMO_DATA_ROOT=str(tmp_path / 'toy'), **env_vars)
    return subprocess.run(['bash', 'tools/demo.sh'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_fast_demo_end_to_end(tmp_path, python_exe):
    p = _demo(tmp_path, python_exe, DEMO_FAST='1')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for k in range(1, 8):
        assert f'== [{k}/7]' in p.stdout
    work = tmp_path / 'work'
    with open(work / 'summary.json') as f:
        s = json.load(f)
    assert s['method'] == 'oaa' and s['method_name'] == 'OAA'
    assert set(s['seed_miou']) == {'cam', 'oaa'}
    assert set(s['seg_miou']) == {'pseudo', 'gt'}
    assert set(s['seg_miou_tta_crf']) == {'pseudo', 'gt'}
    values = [s['seed_miou']['cam'], s['seed_miou']['oaa'],
              s['pseudo_label_miou'], s['seg_miou']['pseudo'],
              s['seg_miou']['gt'], s['seg_miou_tta_crf']['pseudo'],
              s['seg_miou_tta_crf']['gt']]
    assert all(isinstance(v, float) and 0 <= v <= 100 for v in values), s
    # percent, not fractions: even 15 epochs on 48 images beat 1 %
    assert s['seed_miou']['cam'] > 1 and s['pseudo_label_miou'] > 1, s
    assert 0 <= s['pseudo_label_ignored_ratio'] <= 100
    assert osp.getsize(work / 'overview.png') > 1000
    # the printed table shows the same figures
    assert 'seeds: CAM of the OAA classifier' in p.stdout
    assert 'seeds: OAA (train)' in p.stdout
    assert f"{s['seg_miou']['gt']:8.2f}" in p.stdout
    assert f"{s['pseudo_label_miou']:8.2f}" in p.stdout
    # resumable: a second run skips the finished stages
    mtime = os.path.getmtime(work / 'cls' / 'last_checkpoint')
    labels = tmp_path / 'toy' / 'PseudoLabels' / 'demo_oaa'
    first = sorted(os.listdir(labels))[0]
    label_mtime = os.path.getmtime(labels / first)
    metrics = work / 'seg_pseudo_metrics_tta.json'
    metrics_mtime = os.path.getmtime(metrics)
    p2 = _demo(tmp_path, python_exe, timeout=900, DEMO_FAST='1')
    assert p2.returncode == 0, p2.stdout[-3000:] + p2.stderr[-3000:]
    assert os.path.getmtime(labels / first) == label_mtime
    assert os.path.getmtime(work / 'cls' / 'last_checkpoint') == mtime
    assert os.path.getmtime(metrics) == metrics_mtime
    assert 'all CAM files of the train split already exist' in p2.stdout


def test_demo_unknown_method(tmp_path, python_exe):
    """``make demo METHOD=x`` without configs/toy/x_r18_toy.py stops at once (exit 2)
    naming the missing config and listing the methods."""
    p = _demo(tmp_path, python_exe, timeout=300, METHOD='nope')
    assert p.returncode == 2
    assert 'configs/toy/nope_r18_toy.py' in p.stderr
    methods = p.stderr.split('Methods:')[1].split()
    assert {'cam', 'oaa', 'oaa_drop', 'iam', 'iam_drop'} <= set(methods)
    assert not osp.exists(tmp_path / 'toy')  # nothing generated


def test_fast_demo_method_with_a_required_run(tmp_path, python_exe):
    """``METHOD=iam`` (OAA+: its config ``requires`` the OAA maps of the same seed):
    the demo trains the OAA run first, hands its maps to the IAM training, and the
    summary has the method's own seed row (its seeds are the CAMs of its model)."""
    p = _demo(tmp_path, python_exe, DEMO_FAST='1', METHOD='iam')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert 'OAA+ needs the oaa_maps of oaa_r18_toy' in p.stdout
    work = tmp_path / 'work'
    maps = work / 'oaa_r18_toy' / 'oaa_maps'
    assert len(os.listdir(maps)) == 48  # one map file per fast-demo train image
    with open(work / 'cls' / 'iam_r18_toy.py') as f:  # the dumped training config
        assert f"attention_targets = '{maps}'" in f.read()
    with open(work / 'summary.json') as f:
        s = json.load(f)
    assert (s['method'], s['method_name']) == ('iam', 'OAA+')
    assert set(s['seed_miou']) == {'iam'}
    assert 'seeds: OAA+ (train)' in p.stdout
    assert osp.isdir(tmp_path / 'toy' / 'PseudoLabels' / 'demo_iam')
    assert osp.getsize(work / 'overview.png') > 1000


def test_fast_demo_keeps_the_full_toy_data(tmp_path, python_exe):
    """DEMO_FAST=1 without DEMO_DATA_ROOT writes its 48 + 16 images to data/toy_fast
    and works in work_dirs/demo_fast/, never over data/toy (which a running method
    comparison reads: a fast demo once replaced it and stopped that run). The
    dataset step is intercepted: a stand-in python records the arguments of
    make_toy_dataset.py and stops the demo there."""
    log = tmp_path / 'args.txt'
    stub = tmp_path / 'python'
    stub.write_text(
        '#!/bin/bash\n'
        'if [[ "$1" == *make_toy_dataset.py ]]; then\n'
        f'  echo "$@" > {log}; exit 3\n'
        'fi\n'
        f'exec {python_exe} "$@"\n')
    stub.chmod(0o755)
    env = run_env()
    env.pop('DEMO_DATA_ROOT', None)
    env.pop('DEMO_WORK_DIR', None)
    env.update(PYTHON=str(stub), DEMO_FAST='1')
    p = subprocess.run(['bash', 'tools/demo.sh'], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 3, p.stdout[-2000:] + p.stderr[-2000:]
    args = log.read_text().split()
    assert args[args.index('--out') + 1] == 'data/toy_fast'
    assert '--num-train' in args and 'data/toy' not in args
    assert 'toy dataset -> data/toy_fast' in p.stdout


def test_demo_vwl_is_vwl_l(tmp_path, python_exe):
    """``make demo METHOD=vwl`` trains VWL-L (configs/toy/vwl_l_r18_toy.py) in the
    work dir of ``vwl_l``; ``vwl_m`` is its own method. The training step is
    intercepted: a stand-in python records the arguments of tools/train.py and
    stops the demo there."""
    log = tmp_path / 'args.txt'
    stub = tmp_path / 'python'
    stub.write_text(
        '#!/bin/bash\n'
        'if [[ "$1" == *tools/train.py ]]; then\n'
        f'  echo "$@" > {log}; exit 3\n'
        'fi\n'
        f'exec {python_exe} "$@"\n')
    stub.chmod(0o755)
    for method, cfg in (('vwl', 'vwl_l'), ('vwl_m', 'vwl_m')):
        work = osp.join(REPO, 'work_dirs', 'demo_fast', cfg)
        existed = osp.exists(work)
        env = run_env()
        env.update(PYTHON=str(stub), DEMO_FAST='1', METHOD=method,
                   DEMO_DATA_ROOT=str(tmp_path / 'toy'))
        env.pop('DEMO_WORK_DIR', None)
        p = subprocess.run(['bash', 'tools/demo.sh'], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
        if not existed:  # the stub stopped before any training output
            shutil.rmtree(work, ignore_errors=True)
        assert p.returncode == 3, p.stdout[-2000:] + p.stderr[-2000:]
        args = log.read_text().split()
        assert args[1] == f'configs/toy/{cfg}_r18_toy.py', args
        assert args[args.index('--work-dir') + 1].startswith(
            f'work_dirs/demo_fast/{cfg}'), args
