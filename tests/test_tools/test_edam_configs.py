"""The EDAM configs (``configs/edam/``, docs/methods/edam.md) with the standard tools,
on the trees in the real VOC 2012 + SBD and MS-COCO 2014 formats (the session fixtures
``voc_format_root``, copied, and ``coco_format_root``) with the stand-in ImageNet
ResNet-38d (``data/pretrained/resnet38d_ilsvrc_mmwsss.pth``: a seeded random
``ResNet38d`` saved with the PSA / EDAM names and converted by
``tools/model_converters/resnet38d_to_mmwsss.py``), network access blocked.

* VOC: 4 iterations (validation at the end: CAM inference, classification mAP, seed
  mIoU); the same run killed after the iteration-2 checkpoint and ``--resume``-d ends
  with exactly the uninterrupted run's weights and losses (ReseedHook: the sampler's
  pairs, the random resize / flip / colour jitter / crop and the dropout of b6 / b7
  and the CMA continue as drawn); its checkpoint exports CAMs, the seeds are evaluated
  and turned into pseudo labels with the config's rule (EDAMSaliency on the PSA CRF,
  with the tree's DSS saliency maps) and the header's two other settings, each
  ``--eval``-uated.
* ``tools/dist_train.sh`` with 2 gloo processes x 1 pair = 1 process x 2 pairs (the
  sampler's global sequence of pairs does not depend on the process count).
* COCO: 2 iterations, then ``--resume``-d to 4 with validation (on one val image).
* A head group size that differs from the sampler's stops the run, naming both keys.

Besides the schedule (``train_cfg.max_iters`` 4, a checkpoint every 2 iterations), the
runs differ from the shipped configs in (``cpu_opts``): a batch of 2 images = 1 pair
(``train_dataloader.batch_size`` and ``train_dataloader.sampler.batch_size``) instead
of 8 = 4 pairs, one loader worker instead of 4 (restarted as shipped), crops of 128
(``RandomCrop.crop_size`` and ``model.data_preprocessor.size``, the pad size) instead
of 368 -- ResNet-38d has 105 M parameters, 4096 channels at output stride 8 -- and
the CAM inference of validation / export at scale 1 (with flip) instead of 1, 0.5, 1.5,
2 (``model.test_cfg.scales=[1.0]``). The warm-up / poly schedule is the shipped one
(the 4 iterations lie in its warm-up). The pseudo-label commands take
``--allow-all-ignored`` and the DSS maps of the tree (the header names PoolNet's
folder): the weights are random. A checkpoint holds 0.8 GB (the weights and the SGD
momentum).
"""
import functools
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO, no_network_env
from tests.test_tools.test_voc_configs import (EDAM_CONFIGS, _cfg, _dist,
                                               _scalars, _state_dict, _steps,
                                               _tool, coco_resume_run,
                                               iter_cpu_opts, killed_after)

VOC_CFG = 'edam/edam_resnet38d_voc.py'
COCO_CFG = 'edam/edam_resnet38d_coco.py'
CROP = 128
BATCH = 2  # one pair
VOC = osp.join('data', 'VOCdevkit', 'VOC2012')
WEIGHTS = 'resnet38d_ilsvrc_mmwsss.pth'
NO_VAL = {'train_cfg.val_begin': 100}  # the runs whose validation adds nothing
FROZEN = ('conv1a.', 'b2.', 'b2_1.', 'b2_2.')  # frozen_stages=1


@pytest.fixture(scope='module')
def edam_proj(voc_format_root, standin_weights, tmp_path_factory):
    """A project folder (data/, configs/, tools/) with the converted VOC tree and
    the stand-in weights under data/pretrained/."""
    root = tmp_path_factory.mktemp('edam_proj')
    shutil.copytree(osp.join(voc_format_root['root'], 'VOCdevkit'),
                    root / 'data' / 'VOCdevkit', symlinks=True)
    for name in ('tools', 'configs'):
        os.symlink(osp.join(REPO, name), root / name)
    os.symlink(osp.dirname(standin_weights[WEIGHTS]),
               root / 'data' / 'pretrained')
    return str(root)


def cpu_opts(rel, extra=None):
    """``--cfg-options`` of the runs here (module docstring)."""
    return iter_cpu_opts(rel, CROP, BATCH, {
        'train_dataloader.sampler.batch_size': BATCH, **(extra or {})})


def _train(proj, rel, work, resume=False, **extra):
    args = [_cfg(rel), '--work-dir', work]
    if resume:
        args.append('--resume')
    return _tool(proj, 'train.py', *args, *cpu_opts(rel, extra), threads=2,
                 timeout=1800)


# ------------------------------------------------------------------------- VOC
@pytest.fixture(scope='module')
def voc_runs(edam_proj, tmp_path_factory):
    """EDAM on VOC: 4 iterations with validation; and the same run killed after
    the iteration-2 checkpoint and resumed (no validation)."""
    full = str(tmp_path_factory.mktemp('edam_full'))
    _train(edam_proj, VOC_CFG, full)
    resumed = str(tmp_path_factory.mktemp('edam_resumed') / 'work')
    killed_after(full, resumed, 'iter_2.pth')
    p = _train(edam_proj, VOC_CFG, resumed, resume=True, **NO_VAL)
    return full, resumed, p.stdout + p.stderr


def test_voc_config_trains_validates_and_resumes_exactly(voc_runs, edam_proj):
    full, resumed, log = voc_runs
    assert 'resumed' in log.lower() and 'iter_2.pth' in log, log[-3000:]
    scalars = _scalars(full)
    assert 'cls/mAP' in scalars and 'seed/mIoU' in scalars, scalars
    a = _state_dict(osp.join(full, 'iter_4.pth'))
    b = _state_dict(osp.join(resumed, 'iter_4.pth'))
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f'resumed weights differ: {differ[:5]}'
    steps_a, steps_b = _steps(full), _steps(resumed)
    assert sorted(steps_a) == [1, 2, 3, 4] and sorted(steps_b) == [3, 4]
    for s, rec in steps_b.items():
        losses = {k: v for k, v in rec.items() if k.startswith('loss')}
        assert losses and losses == {k: v for k, v in steps_a[s].items()
                                     if k.startswith('loss')}, s
    assert all(np.isfinite(r['loss']) for r in steps_a.values())
    # the backbone starts from the stand-in file; the frozen parts (conv1a,
    # b2-b2_2, every BN) stay as loaded, the rest moves
    init = _state_dict(osp.join(edam_proj, 'data', 'pretrained', WEIGHTS))
    assert {f'backbone.{k}' for k in init} < set(a)
    for k, v in init.items():
        same = torch.equal(a[f'backbone.{k}'], v)
        if k.startswith(FROZEN) or '.bn_' in k or k.startswith('bn7.'):
            assert same, k
        elif k.endswith('conv_branch2b2.weight'):
            assert not same, k


def test_voc_export_seeds_and_pseudo_labels(voc_runs, edam_proj, tmp_path):
    full, _, _ = voc_runs
    ckpt = osp.join(full, 'iter_4.pth')
    cams = str(tmp_path / 'cams')
    _tool(edam_proj, 'export_cams.py', _cfg(VOC_CFG), ckpt, '--out', cams,
          '--cfg-options', 'model.test_cfg.scales=[1.0]', threads=2)
    with open(osp.join(edam_proj, VOC, 'ImageSets', 'Segmentation',
                       'train_aug.txt')) as f:
        train_aug = sorted(ln.split()[0] for ln in f if ln.strip())
    assert sorted(n[:-4] for n in os.listdir(cams)) == train_aug
    p = _tool(edam_proj, 'eval_seeds.py', cams, _cfg(VOC_CFG), '--no-progress',
              threads=2)
    assert 'mIoU' in p.stdout + p.stderr
    sal = osp.join(VOC, 'SaliencyDSS')
    settings = {
        # the config's rule: EDAMSaliency on the PSA CRF, with saliency maps
        'EDAMSaliency': ['--saliency-dir', sal],
        # the header's two settings without saliency
        'threshold': ['--rule', 'ThresholdBackground', '--rule-options',
                      'threshold=0.5'],
        'dcrf': ['--rule', 'ThresholdBackground', '--rule-options', 'crf=psa',
                 'crf_unary=one_minus_max'],
    }
    for name, args in settings.items():
        out = str(tmp_path / f'labels_{name}')
        summary = str(tmp_path / f'{name}.json')
        p = _tool(edam_proj, 'make_pseudo_labels.py', _cfg(VOC_CFG), cams,
                  '--out', out, *args, '--workers', '1', '--eval', '--json',
                  summary, '--allow-all-ignored', '--no-progress', threads=2)
        log = p.stdout + p.stderr
        if name == 'EDAMSaliency':
            assert 'EDAMSaliency' in log, log[-2000:]
        pngs = sorted(os.listdir(out))
        assert [n[:-4] for n in pngs] == train_aug, name
        for png in pngs:
            with Image.open(osp.join(out, png)) as im:
                values = set(np.unique(np.array(im)).tolist())
            assert values <= set(range(21)) | {255}, (name, values)
        assert 'mIoU' in log, (name, log[-2000:])


# ------------------------------------------------------------------ 2 processes
def test_two_processes_equal_one(edam_proj, tmp_path):
    """tools/dist_train.sh with 2 gloo processes x 1 pair = 1 process x 2 pairs:
    the same weights after each of 2 steps, up to float rounding far below the
    step. ClassGroupSampler gives both the same global sequence of pairs. Switched
    off, because the ranks draw other random numbers than a single process does:
    the dropout of b6 / b7 and of the CMA (``model.backbone.dropout``,
    ``model.head.cma_cfg.dropout``) and the random resize / flip / jitter / crop (a
    fixed resize to 128 x 128 instead, in the main process). A larger lr than the
    recipe's 1e-3 (0.1, still with the warm-up's factor 0.1 in these steps): with
    the random stand-in weights the loss is flat and the recipe's steps move the
    backbone by a few float ulps only. Everything else is the shipped config."""
    cfg = tmp_path / 'edam_ddp.py'
    cfg.write_text(f"""_base_ = [{_cfg(VOC_CFG)!r}]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({CROP}, {CROP}), keep_ratio=False),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(num_workers=0, dataset=dict(pipeline=train_pipeline))
model = dict(
    data_preprocessor=dict(size=({CROP}, {CROP})),
    backbone=dict(dropout=(0.0, 0.0)),
    head=dict(cma_cfg=dict(dropout=0.0)))
optim_wrapper = dict(optimizer=dict(lr=0.1))
train_cfg = dict(max_iters=2)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, save_optimizer=False))
""")
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    _tool(edam_proj, 'train.py', str(cfg), '--work-dir', one, '--cfg-options',
          f'train_dataloader.batch_size={2 * BATCH}',
          f'train_dataloader.sampler.batch_size={2 * BATCH}', threads=2,
          timeout=1800)
    p = _dist(edam_proj, 'dist_train.sh', str(cfg), '--work-dir', two,
              '--cfg-options', f'train_dataloader.batch_size={BATCH}',
              f'train_dataloader.sampler.batch_size={BATCH}', timeout=1800)
    log = p.stdout + p.stderr
    assert 'world_size: 2' in log or 'Distributed launcher: pytorch' in log
    steps = _steps(one)
    assert sorted(steps) == [1, 2] and all(np.isfinite(r['loss'])
                                           for r in steps.values()), steps
    init = {f'backbone.{k}': v for k, v in _state_dict(
        osp.join(edam_proj, 'data', 'pretrained', WEIGHTS)).items()}
    a1 = _state_dict(osp.join(one, 'iter_1.pth'))
    a2, b2 = (_state_dict(osp.join(w, 'iter_2.pth')) for w in (one, two))
    b1 = _state_dict(osp.join(two, 'iter_1.pth'))
    assert a1.keys() == a2.keys() == b1.keys() == b2.keys()
    assert set(init) < set(a2)
    moved = 0
    for k in a2:
        if not a2[k].is_floating_point():
            assert torch.equal(a2[k], b2[k]), k
            continue
        if k in init and torch.equal(a2[k], init[k]):  # frozen: conv1a, b2*, BN
            assert torch.equal(b2[k], init[k]), k
            continue
        # the step of iteration 2 (iteration 1 for the backbone: from the file)
        step = (a2[k] - a1[k]).abs().max().item()
        if k in init:
            first = (a1[k] - init[k]).abs().max().item()
            assert (a1[k] - b1[k]).abs().max().item() <= 0.02 * first, k
        diff = (a2[k] - b2[k]).abs().max().item()
        if step == 0:  # e.g. a LayerNorm scale without gradient yet
            assert diff == 0, k
            continue
        moved += 1
        assert diff <= 0.02 * step, (k, diff, step)
    assert moved > 40, moved


# ------------------------------------------------------------------------ COCO
def test_coco_config_trains_validates_and_resumes(edam_proj, coco_format_root,
                                                  tmp_path):
    state = coco_resume_run(edam_proj, coco_format_root['root'],
                            str(tmp_path / 'work'),
                            functools.partial(_train, edam_proj, COCO_CFG))
    assert state['head.cma.classifier.weight'].shape[0] == 80


# ------------------------------------------------------------------ misconfig
def test_group_size_mismatch_names_both_keys(edam_proj, tmp_path):
    """A head group size other than the sampler's stops train.py before the first
    iteration, naming both config keys."""
    args = [sys.executable, osp.join(REPO, 'tools', 'train.py'), _cfg(VOC_CFG),
            '--work-dir', str(tmp_path / 'work'),
            *cpu_opts(VOC_CFG, {'model.head.group_size': 4})]
    p = subprocess.run(args, cwd=edam_proj, env=no_network_env(2),
                       capture_output=True, text=True, timeout=900)
    log = p.stdout + p.stderr
    assert p.returncode != 0, log[-3000:]
    assert 'model.head.group_size' in log, log[-3000:]
    assert 'train_dataloader.sampler.group_size' in log, log[-3000:]
    assert not glob.glob(str(tmp_path / 'work' / '*.pth'))


def test_edam_configs_are_listed():
    assert sorted(EDAM_CONFIGS) == sorted([VOC_CFG, COCO_CFG])
