"""The VWL toy configs (configs/toy/vwl_l_r18_toy.py, vwl_m_r18_toy.py;
docs/methods/vwl.md) with the standard tools on the toy data, network access
blocked, ``--cfg-options`` for the schedule and ``data_root`` only (and, for the
2-process run, the settings its docstring lists):

* VWL-M: 2 epochs uninterrupted; the same run stopped after epoch 1 and
  ``--resume``-d ends with bit-identical weights, the identical memory bank
  (``head.codebook.codebook``, a buffer restored from the checkpoint) and
  identical exported CAMs;
* VWL-L: 1 epoch, CAM export, seed evaluation, pseudo labels with the config's
  rule (ThresholdBackground with the ``vwl`` CRF preset);
* VWL-M with ``tools/dist_train.sh``, 2 gloo processes x 2 images against 1
  process x 4 images on the same global batches: every rank holds the same bank
  after every step, the one process's bank (the per-word sums and counts are
  all-reduced).
"""
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import numpy as np
import torch

from tests.conftest import REPO, no_network_env

TOY = osp.join(REPO, 'configs', 'toy')
NO_VAL = 'train_cfg.val_begin=100'  # validation (CAM inference) adds nothing
BANK = 'head.codebook.codebook'


def _run(args, threads=2, env=None, timeout=600):
    p = subprocess.run(args, cwd=REPO, env=env or no_network_env(threads),
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


def _tool(script, *args):
    return _run([sys.executable, osp.join(REPO, 'tools', script), *args])


def _train(cfg, work, data_root, epochs, *extra, resume=False):
    args = [osp.join(TOY, cfg), '--work-dir', work]
    if resume:
        args.append('--resume')
    return _tool('train.py', *args, '--cfg-options', f'data_root={data_root}',
                 f'train_cfg.max_epochs={epochs}',
                 'default_hooks.checkpoint.interval=1', NO_VAL, *extra)


def _state(path):
    return torch.load(path, map_location='cpu',
                      weights_only=True)['state_dict']


def _export(cfg, ckpt, out, data_root, *extra):
    _tool('export_cams.py', osp.join(TOY, cfg), ckpt, '--out', out,
          '--cfg-options', f'data_root={data_root}', *extra)
    return sorted(os.listdir(out))


def _train_ids(data_root):
    with open(osp.join(data_root, 'ImageSets', 'Segmentation',
                       'train.txt')) as f:
        return sorted(ln.strip() for ln in f if ln.strip())


def test_vwl_m_toy_resumes_exactly(toy_root, tmp_path):
    full = str(tmp_path / 'full')
    _train('vwl_m_r18_toy.py', full, toy_root, 2)
    # the same run stopped after epoch 1: its first checkpoint, nothing else
    work = str(tmp_path / 'resumed')
    os.makedirs(work)
    shutil.copy(osp.join(full, 'epoch_1.pth'), work)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_1.pth'))
    p = _train('vwl_m_r18_toy.py', work, toy_root, 2, resume=True)
    log = p.stdout + p.stderr
    assert 'epoch_1.pth' in log and 'resumed epoch: 1' in log, log[-3000:]
    a = _state(osp.join(full, 'epoch_2.pth'))
    b = _state(osp.join(work, 'epoch_2.pth'))
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the bank is in the checkpoint and moved in each epoch
    first = _state(osp.join(full, 'epoch_1.pth'))
    assert BANK in a and 'head.codebook.initialized' in a
    assert a[BANK].shape == (64, 128)
    assert not torch.equal(first[BANK], a[BANK])
    assert torch.equal(a[BANK], b[BANK])
    # the same CAMs (scale 1 with its flip pair: the shipped 4 scales take
    # twice as long and are exported in the VWL-L test)
    ca, cb = (_export('vwl_m_r18_toy.py', osp.join(w, 'epoch_2.pth'),
                      str(tmp_path / f'cams_{n}'), toy_root,
                      'model.test_cfg.scales=[1.0]')
              for w, n in ((full, 'full'), (work, 'resumed')))
    assert ca == cb == [i + '.npz' for i in _train_ids(toy_root)]
    from mmwsss.utils.cam_io import load_cam
    for name in ca:
        x = load_cam(str(tmp_path / 'cams_full' / name))
        y = load_cam(str(tmp_path / 'cams_resumed' / name))
        np.testing.assert_array_equal(x.labels, y.labels)
        np.testing.assert_array_equal(x.cams, y.cams)
        np.testing.assert_array_equal(x.scores, y.scores)


def test_vwl_l_toy_cams_seeds_pseudo_labels(toy_root, tmp_path):
    work = str(tmp_path / 'vwl_l')
    p = _train('vwl_l_r18_toy.py', work, toy_root, 1,
               'default_hooks.logger.interval=1')
    log = p.stdout + p.stderr
    for key in ('loss_cls', 'loss_word', 'loss_w2i', 'loss_decov'):
        assert f'{key}: ' in log, (key, log[-3000:])
    state = _state(osp.join(work, 'epoch_1.pth'))
    assert state['head.codebook.weight'].shape == (64, 128)
    assert 'head.w2i_classifier.weight' in state
    cfg = osp.join(TOY, 'vwl_l_r18_toy.py')
    opts = ['--cfg-options', f'data_root={toy_root}',
            'optim_wrapper.optimizer.lr=0']
    cams = str(tmp_path / 'cams')
    names = _export('vwl_l_r18_toy.py', osp.join(work, 'epoch_1.pth'), cams,
                    toy_root)
    ids = _train_ids(toy_root)
    assert names == [i + '.npz' for i in ids]
    p = _tool('eval_seeds.py', cams, cfg, *opts)
    assert 'mIoU' in p.stdout + p.stderr
    out = str(tmp_path / 'pseudo')
    summary = str(tmp_path / 'pseudo.json')
    p = _tool('make_pseudo_labels.py', cfg, cams, '--out', out, '--eval',
              '--json', summary, '--allow-all-ignored', '--no-progress', *opts)
    log = p.stdout + p.stderr
    assert 'ThresholdBackground' in log and 'mIoU' in log, log[-3000:]
    with open(summary) as f:
        text = json.dumps(json.load(f))
    assert 'ThresholdBackground' in text and 'vwl' in text, text[:2000]
    pngs = sorted(f for f in os.listdir(out) if f.endswith('.png'))
    assert pngs == [i + '.png' for i in ids]
    from PIL import Image
    for png in pngs:
        with Image.open(osp.join(out, png)) as im:
            values = set(np.unique(np.array(im)).tolist())
        assert values <= set(range(9)) | {255}, (png, values)


# ------------------------------------------------------------------ 2 processes
DUMP_HOOK = '''
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class VWLBankDumpHook(Hook):
    """Save this rank's memory bank and the ids of its batch after every
    training step (and the bank before the first)."""

    def _save(self, runner, step, ids):
        model = runner.model
        model = getattr(model, 'module', model)
        torch.save(dict(bank=model.head.codebook.codebook.detach().clone(),
                        ids=ids),
                   osp.join(runner.work_dir,
                            f'bank_rank{get_rank()}_step{step}.pt'))

    def before_train(self, runner):
        self._save(runner, 0, [])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        ids = [ds.metainfo['img_id'] for ds in data_batch['data_samples']]
        self._save(runner, runner.iter + 1, ids)
'''

DDP_CFG = '''_base_ = [{base!r}]
custom_imports = dict(imports=['vwl_bank_dump'], allow_failed_imports=False)
custom_hooks = [dict(type='VWLBankDumpHook')]
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackWSSSInputs')]
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=train_pipeline))
model = dict(
    backbone=dict(norm_eval=True),
    head=dict(codebook=dict(rho=0.5)))
train_cfg = dict(max_epochs=1, val_begin=100)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, save_optimizer=False))
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _dumps(work, rank, steps):
    return [torch.load(osp.join(work, f'bank_rank{rank}_step{s}.pt'),
                       map_location='cpu', weights_only=True)
            for s in range(steps + 1)]


def test_vwl_m_two_processes_share_one_bank(toy_root, tmp_path):
    """2 gloo processes x 2 images = 1 process x 4 images, 4 steps (the 16 toy
    images). The global batches are the same: DefaultSampler without shuffle
    gives rank r the images r, r + 2, ..., the one process 0, 1, 2, ...; no
    random flip (the ranks would draw other flips). Batch-norm statistics are
    per rank (batches of 2 against 4: other features, another bank), so the
    backbone's batch norm runs on its running statistics
    (``model.backbone.norm_eval=True``); rho = 0.5 instead of 4e-3, so that each
    step's global means dominate the bank; lr = 0, so that every step's features
    come from the same weights in both runs (with weights that differ in the
    last bits after an update, a pixel whose two best words are that close
    would change its word, the argmax of Eq. 4, and move a word's mean by far
    more than rounding). Every rank holds the same bank after every step, the
    one process's bank up to the rounding of the all-reduce's order."""
    hooks = tmp_path / 'hooks'
    hooks.mkdir()
    (hooks / 'vwl_bank_dump.py').write_text(DUMP_HOOK)
    cfg = tmp_path / 'vwl_m_ddp.py'
    cfg.write_text(DDP_CFG.format(base=osp.join(TOY, 'vwl_m_r18_toy.py')))
    env = no_network_env(1)
    env['PYTHONPATH'] = str(hooks) + os.pathsep + env['PYTHONPATH']
    opts = ['--cfg-options', f'data_root={toy_root}',
            'optim_wrapper.optimizer.lr=0']
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    _run([sys.executable, osp.join(REPO, 'tools', 'train.py'), str(cfg),
          '--work-dir', one, *opts, 'train_dataloader.batch_size=4'], env=env)
    env['PORT'] = str(_free_port())
    env['PYTHON'] = sys.executable
    p = _run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg), '2',
              '--work-dir', two, *opts, 'train_dataloader.batch_size=2'],
             env=env, timeout=900)
    log = p.stdout + p.stderr
    assert 'world_size: 2' in log or 'Distributed launcher: pytorch' in log
    steps = 4
    single = _dumps(one, 0, steps)
    ranks = [_dumps(two, r, steps) for r in (0, 1)]
    assert not osp.exists(osp.join(one, 'bank_rank1_step0.pt'))
    assert torch.equal(single[0]['bank'], ranks[0][0]['bank'])
    for s in range(1, steps + 1):
        # the same global batch
        ids = ranks[0][s]['ids'] + ranks[1][s]['ids']
        assert len(single[s]['ids']) == 4 and len(ranks[0][s]['ids']) == 2
        assert sorted(ids) == sorted(single[s]['ids']), s
        # every rank holds the same bank
        a, b = ranks[0][s]['bank'], ranks[1][s]['bank']
        assert torch.equal(a, b), (s, (a - b).abs().max())
        # the one process's, within rounding; the step moved it by far more
        ref, prev = single[s]['bank'], single[s - 1]['bank']
        moved = (ref - prev).abs().max().item()
        diff = (a - ref).abs().max().item()
        assert moved > 1e-2, (s, moved)
        assert diff <= 1e-5 * max(1.0, ref.abs().max().item()), (s, diff,
                                                                 moved)
    # the checkpoints hold the banks of the last step
    torch.testing.assert_close(_state(osp.join(one, 'epoch_1.pth'))[BANK],
                               single[steps]['bank'], rtol=0, atol=0)
    torch.testing.assert_close(_state(osp.join(two, 'epoch_1.pth'))[BANK],
                               ranks[0][steps]['bank'], rtol=0, atol=0)
