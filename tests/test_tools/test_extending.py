"""docs/extending.md's worked example, as the page shows it: a new head and a stateful
hook in one file plus a config, trained (and resumed) with tools/train.py on the toy
data, its CAMs exported and evaluated with the standard tools."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO, no_network_env

DOC = osp.join(REPO, 'docs', 'extending.md')


def _blocks():
    """The worked example's files: the fenced block after each "`name`" line."""
    text = open(DOC).read()
    section = text[text.index('### 6. Worked example'):]
    files = {}
    for name in ('lse_cam.py', 'lse_cam_r18_toy.py'):
        m = re.search(r'`' + re.escape(name) + r'`[^\n]*\n\n```python\n(.*?)```',
                      section, re.S)
        assert m, f'{name} not found in docs/extending.md'
        files[name] = m.group(1)
    return files


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp('lse_project')
    for name, code in _blocks().items():
        (folder / name).write_text(code)
    return str(folder)


def _env(project):
    env = no_network_env(2)
    env['PYTHONPATH'] = project + os.pathsep + env['PYTHONPATH']
    return env


def _run(project, *args):
    p = subprocess.run([sys.executable, *args], cwd=project, env=_env(project),
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p.stdout + p.stderr


def test_head_contract(project):
    sys.path.insert(0, project)
    try:
        import lse_cam
    finally:
        sys.path.remove(project)
    head = lse_cam.LSECAMHead(r=5.0, in_channels=4, num_classes=3)
    f = torch.randn(2, 3, 5, 6)
    s = head.image_logits(f)
    # between GAP and GMP; r -> 0 is GAP
    assert (s >= f.mean((2, 3)) - 1e-5).all() and (s <= f.amax((2, 3)) + 1e-5).all()
    small = lse_cam.LSECAMHead(r=1e-2, in_channels=4, num_classes=3)
    torch.testing.assert_close(small.image_logits(f), f.mean((2, 3)),
                               atol=2e-2, rtol=0)
    # the rest is inherited: ReLU class maps, the soft-margin loss on its logits
    assert torch.equal(head.class_maps(f), f.clamp_min(0))
    assert head.num_classes_excludes_background


def test_worked_example_runs_with_the_standard_tools(project, toy_root):
    tool = lambda name: osp.join(REPO, 'tools', name)  # noqa: E731
    cfg = osp.join(project, 'lse_cam_r18_toy.py')
    work = osp.join(project, 'work_dirs', 'lse_cam')
    opts = ['--cfg-options', f'data_root={toy_root}',
            'default_hooks.checkpoint.interval=1', 'train_cfg.val_interval=100']
    # one epoch, then resumed for a second: the bank survives the checkpoint
    _run(project, tool('train.py'), cfg, '--work-dir', work, *opts,
         'train_cfg.max_epochs=1')
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu',
                      weights_only=True)
    with open(osp.join(toy_root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        ids = sorted(ln.strip() for ln in f if ln.strip())
    bank = ckpt['score_bank']
    assert sorted(bank['ids'].tolist()) == ids and bank['version'] == 1
    assert bank['scores'].shape == (len(ids), 8)
    log = _run(project, tool('train.py'), cfg, '--work-dir', work, '--resume',
               *opts, 'train_cfg.max_epochs=2')
    assert f'ScoreBankHook: restored the scores of {len(ids)} images' in log
    # the default checks are on without being listed
    assert 'WSSSNumClassCheckHook' in log and 'CheckInvalidLossHook' in log
    with open(osp.join(work, 'score_bank', 'scores.json')) as f:
        scores = json.load(f)
    assert sorted(scores) == ids
    assert all(0 < v < 1 for p in scores.values() for v in p)
    ckpt2 = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu',
                       weights_only=True)
    assert ckpt2['state_dict']['head.classifier.weight'].shape[0] == 8
    # the bank moved in the second epoch (momentum 0.5 of new probabilities)
    assert not np.allclose(ckpt2['score_bank']['scores'], bank['scores'])

    cams = osp.join(work, 'cams')
    _run(project, tool('export_cams.py'), cfg, osp.join(work, 'epoch_2.pth'),
         '--out', cams, '--cfg-options', f'data_root={toy_root}',
         'model.test_cfg.scales=[1.0]')
    assert sorted(n[:-4] for n in os.listdir(cams)) == ids
    out = osp.join(project, 'seeds.json')
    _run(project, tool('eval_seeds.py'), cams, cfg, '--out', out,
         '--no-progress', '--cfg-options', f'data_root={toy_root}')
    with open(out) as f:
        res = json.load(f)
    assert 0 < res['mIoU'] <= 100
