"""Every shipped VOC config trains, validates / tests, exports and (OAA) resumes from its
first checkpoint, as shipped, on a tree in the real VOC 2012 + SBD on-disk formats
(``tests/fixtures_formats.py``) with stand-in ImageNet weights written the documented
way from randomly initialised models.

The runs use the standard tools from a project folder laid out as
``docs/getting_started.md`` says (``data/VOCdevkit/VOC2012``, ``data/pretrained/``), so
the configs' own relative paths are used: ``--cfg-options`` only shorten the schedule
(epochs / iterations, checkpoint and validation intervals) and, for the ResNet-101
segmentors, the batch (see ``CPU_BATCH``), and for the classifiers the CAM inference
scales (``CAM_SCALES``). Every subprocess runs with Python-level network access blocked
(``tests/no_network``): nothing may download.
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO, no_network_env
from tests.test_tools.test_toy_configs import kill_after_first_epoch
from tests.test_tools.test_train_tools import _free_port

CONFIG_DIR = osp.join(REPO, 'configs')

# What this module runs; test_every_shipped_config_is_run checks that the list is
# complete, so a new config under configs/ needs a run here.
CLASSIFIER_CONFIGS = ('cam/cam_vgg16_voc.py', 'oaa/oaa_vgg16_voc.py',
                      'oaa/oaa_drop_vgg16_voc.py', 'oaa/oaa_iam_vgg16_voc.py',
                      'oaa/oaa_drop_iam_vgg16_voc.py')
SEGMENTOR_CONFIGS = ('deeplab/largefov_vgg16_voc12aug_gt.py',
                     'deeplab/largefov_vgg16_voc12aug_pseudo.py',
                     'deeplab/deeplabv2_r101_voc12aug_gt.py',
                     'deeplab/deeplabv2_r101_voc12aug_pseudo.py',
                     'deeplab/deeplabv2_r101-v1c_voc12aug_pseudo.py',
                     'deeplab/deeplabv3plus_r101_voc12aug_pseudo.py')
# The ResNet-101 segmentors' recipe batch (10 crops of 321 x 3 MSC scales; 4 crops of
# 512 for DeepLabV3+) takes minutes per iteration on 2 CPU cores: CI trains them with
# one image per step. Nothing else differs from the shipped configs.
CPU_BATCH = {
    'deeplab/deeplabv2_r101_voc12aug_gt.py': 1,
    'deeplab/deeplabv2_r101_voc12aug_pseudo.py': 1,
    'deeplab/deeplabv2_r101-v1c_voc12aug_pseudo.py': 1,
    'deeplab/deeplabv3plus_r101_voc12aug_pseudo.py': 1,
}


# The classifiers' CAM inference (validation, test, export) runs 4 scales (up to 2x, i.e.
# 1000 x 750 for a 500 x 375 image) x flip through an OS8 VGG16: about 30 s per VOC
# image on 2 CPU cores. Here it runs at scale 1 (with flip); the multi-scale code is
# the same as for the toy configs, which run it as shipped (test_cam_pipeline, demo).
CAM_SCALES = {'model.test_cfg.scales': '[1.0]'}


def _cfg(rel):
    return osp.join(CONFIG_DIR, rel)


def _opts(**kv):
    return ['--cfg-options'] + [f'{k}={v}' for k, v in kv.items()]


def _tool(proj, script, *args, timeout=900, threads=2, check=True):
    p = subprocess.run([sys.executable, osp.join(REPO, 'tools', script), *args],
                       cwd=proj, env=no_network_env(threads), capture_output=True,
                       text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, (f'{script} {args}\n' + p.stdout[-4000:] + '\n' +
                                   p.stderr[-6000:])
    return p


def _dist(proj, script, *args, nproc=2, timeout=900):
    env = no_network_env(1)
    env['PORT'] = str(_free_port())
    env['PYTHON'] = sys.executable
    p = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args[:1],
                        str(nproc), *args[1:]],
                       cwd=proj, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, (f'{script} {args}\n' + p.stdout[-4000:] + '\n' +
                               p.stderr[-6000:])
    return p


def _scalars(work_dir):
    """The last logged values of every key (``vis_data/scalars.json``)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    out = {}
    for f in files:
        with open(f) as fh:
            for line in fh:
                out.update(json.loads(line))
    return out


@pytest.fixture(scope='module')
def proj(voc_format_root, standin_weights, tmp_path_factory):
    """A project folder as docs/getting_started.md lays it out."""
    root = tmp_path_factory.mktemp('voc_proj')
    data = root / 'data'
    data.mkdir()
    os.symlink(osp.join(voc_format_root['root'], 'VOCdevkit'), data / 'VOCdevkit')
    weights = {osp.dirname(p) for p in standin_weights.values()}
    assert len(weights) == 1
    os.symlink(weights.pop(), data / 'pretrained')
    return str(root)


@pytest.fixture(scope='module')
def split_ids(voc_format_root):
    root = voc_format_root['data_root']

    def read(name):
        with open(osp.join(root, 'ImageSets', 'Segmentation', name)) as f:
            return [ln.split()[0] for ln in f if ln.strip()]

    return dict(train_aug=read('train_aug.txt'), train=read('train.txt'),
                val=read('val.txt'))


def test_every_shipped_config_is_run():
    shipped = sorted(
        osp.relpath(p, CONFIG_DIR)
        for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
        if '_base_' not in p and not osp.relpath(p, CONFIG_DIR).startswith('toy'))
    assert shipped == sorted(CLASSIFIER_CONFIGS + SEGMENTOR_CONFIGS)
    # the toy configs are run by the toy tests and the demo
    tests_text = ''.join(
        open(p).read()
        for p in glob.glob(osp.join(REPO, 'tests', '**', '*.py'), recursive=True))
    tests_text += open(osp.join(REPO, 'tools', 'demo.sh')).read()
    for p in glob.glob(osp.join(CONFIG_DIR, 'toy', '*.py')):
        assert osp.basename(p) in tests_text, f'{p} is run by no test'


# ---------------------------------------------------------------- classifiers
def _train_epochs(proj, rel, work, epochs, *extra, resume=False, dist=False):
    args = [_cfg(rel), '--work-dir', work]
    if resume:
        args.append('--resume')
    args += _opts(**{'train_cfg.max_epochs': epochs,
                     'default_hooks.logger.interval': 1}, **CAM_SCALES, **dict(extra))
    if dist:
        return _dist(proj, 'dist_train.sh', *args)
    return _tool(proj, 'train.py', *args)


@pytest.fixture(scope='module')
def oaa_runs(proj, split_ids, tmp_path_factory):
    """OAA and OAA++ as shipped: epoch 1 (no maps yet: start_epoch=1), then resumed
    from that first checkpoint to epoch 2, OAA with 2 processes (dist_train.sh)."""
    out = {}
    for rel in ('oaa/oaa_vgg16_voc.py', 'oaa/oaa_drop_vgg16_voc.py'):
        work = str(tmp_path_factory.mktemp(osp.basename(rel)[:-3]))
        _train_epochs(proj, rel, work, 2)
        first = osp.join(work, 'epoch_1.pth')
        # the first checkpoint (no map yet: empty arrays) loads under weights_only
        # and exports
        ckpt = torch.load(first, map_location='cpu', weights_only=True)
        assert ckpt['oaa_state']['cumulative']['ids'].size == 0
        _tool(proj, 'export_oaa_maps.py', first, '--out',
              osp.join(work, 'maps_epoch1'))
        # killed during epoch 2: resume from the first checkpoint
        kill_after_first_epoch(work)
        p = _train_epochs(proj, rel, work, 2, resume=True,
                          dist=rel == 'oaa/oaa_vgg16_voc.py')
        log = p.stdout + p.stderr
        assert 'epoch_1.pth' in log and re.search(r'[Rr]esum', log), log[-3000:]
        maps = osp.join(work, 'oaa_maps')
        assert sorted(f[:-4] for f in os.listdir(maps)) == sorted(
            split_ids['train_aug'])
        out[rel] = dict(work=work, maps=maps)
    return out


@pytest.mark.parametrize('rel', ['oaa/oaa_vgg16_voc.py', 'oaa/oaa_drop_vgg16_voc.py'])
def test_oaa_config(proj, oaa_runs, rel, split_ids, tmp_path):
    run = oaa_runs[rel]
    # validation ran at the end of epoch 2 (mAP + seed sweep on VOC train)
    scalars = _scalars(run['work'])
    assert any('mAP' in k for k in scalars), scalars
    assert any('mIoU' in k for k in scalars), scalars
    # the maps of the last checkpoint export, and evaluate as seeds
    maps = str(tmp_path / 'maps')
    _tool(proj, 'export_oaa_maps.py', osp.join(run['work'], 'epoch_2.pth'), '--out',
          maps)
    assert len(os.listdir(maps)) == len(split_ids['train_aug'])
    res = str(tmp_path / 'seeds.json')
    _tool(proj, 'eval_seeds.py', maps, _cfg(rel), '--out', res, '--no-progress')
    with open(res) as f:
        assert 'miou' in json.dumps(json.load(f)).lower()
    if rel == 'oaa/oaa_vgg16_voc.py':
        # plain CAMs of the final OAA classifier (docs/getting_started.md stage 2)
        cams = str(tmp_path / 'cams')
        p = _tool(proj, 'export_cams.py', _cfg(rel), osp.join(run['work'], 'epoch_2.pth'),
                  '--out', cams, *_opts(**CAM_SCALES))
        assert len(os.listdir(cams)) == len(split_ids['train_aug'])
        assert 'OAAHook' not in p.stdout + p.stderr  # an export trains nothing


def test_cam_config(proj, split_ids, tmp_path):
    rel = 'cam/cam_vgg16_voc.py'
    work = str(tmp_path / 'work')
    _train_epochs(proj, rel, work, 1)
    ckpt = osp.join(work, 'epoch_1.pth')
    metrics = str(tmp_path / 'metrics.json')
    _tool(proj, 'test.py', _cfg(rel), ckpt, '--metrics-out', metrics,
          *_opts(**CAM_SCALES))
    with open(metrics) as f:
        m = json.load(f)
    assert any('mAP' in k for k in m) and any('mIoU' in k for k in m), m
    cams = str(tmp_path / 'cams')
    p = _tool(proj, 'export_cams.py', _cfg(rel), ckpt, '--out', cams,
              *_opts(**CAM_SCALES))
    assert sorted(f[:-4] for f in os.listdir(cams)) == sorted(split_ids['train_aug'])
    _tool(proj, 'eval_seeds.py', cams, _cfg(rel), '--no-progress')


@pytest.mark.parametrize('rel,source', [
    ('oaa/oaa_iam_vgg16_voc.py', 'oaa/oaa_vgg16_voc.py'),
    ('oaa/oaa_drop_iam_vgg16_voc.py', 'oaa/oaa_drop_vgg16_voc.py'),
])
def test_iam_config(proj, oaa_runs, rel, source, split_ids, tmp_path):
    """OAA+ / OAA+++ on the maps of an OAA run in another work dir, given with the
    config's top-level ``attention_targets`` variable; first checkpoint resumed."""
    maps = oaa_runs[source]['maps']
    work = str(tmp_path / 'work')
    p = _train_epochs(proj, rel, work, 1, attention_targets=maps)
    assert 'attention_targets' in p.stdout + p.stderr
    p = _train_epochs(proj, rel, work, 2, resume=True, attention_targets=maps)
    assert 'epoch_1.pth' in p.stdout + p.stderr
    cams = str(tmp_path / 'cams')
    _tool(proj, 'export_cams.py', _cfg(rel), osp.join(work, 'epoch_2.pth'), '--out',
          cams, '--cfg-options', f'attention_targets={maps}')
    assert len(os.listdir(cams)) == len(split_ids['train_aug'])
    _tool(proj, 'eval_seeds.py', cams, _cfg(rel), '--split', 'val', '--no-progress')


def test_iam_attention_targets_override_reaches_the_pipeline(tmp_path):
    """``--cfg-options attention_targets=DIR`` used to change nothing (the variable is
    substituted when the file is parsed): the IAM trained on stale targets."""
    from mmwsss.utils.launch import load_config
    for rel in ('oaa/oaa_iam_vgg16_voc.py', 'oaa/oaa_drop_iam_vgg16_voc.py'):
        cfg = load_config(_cfg(rel), {'attention_targets': str(tmp_path)})
        dirs = [t['cam_dir'] for t in cfg.train_dataloader.dataset.pipeline
                if t['type'] == 'LoadAttentionTargets']
        assert dirs == [str(tmp_path)], rel
    cfg = load_config(_cfg('cam/cam_vgg16_voc.py'), {'data_root': '/x/VOC2012'})
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == '/x/VOC2012'


# ----------------------------------------------------------------- segmentors
@pytest.fixture(scope='module')
def pseudo_labels(proj, oaa_runs, split_ids):
    """The documented pseudo-label command on the OAA maps (saliency rule)."""
    out = osp.join(proj, 'data', 'pseudo_oaa')
    _tool(proj, 'make_pseudo_labels.py', _cfg('oaa/oaa_vgg16_voc.py'),
          oaa_runs['oaa/oaa_vgg16_voc.py']['maps'], '--out', out,
          '--saliency-dir', 'data/VOCdevkit/VOC2012/SaliencyDSS', '--workers', '2',
          '--eval')
    assert len(os.listdir(out)) == len(split_ids['train_aug'])
    return out


def _seg_opts(rel, iters, **extra):
    kv = {'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
          'default_hooks.checkpoint.interval': iters,
          'default_hooks.logger.interval': 1}
    if rel in CPU_BATCH:
        kv['train_dataloader.batch_size'] = CPU_BATCH[rel]
    kv.update(extra)
    return _opts(**kv)


@pytest.mark.parametrize('rel', SEGMENTOR_CONFIGS)
def test_segmentor_config(proj, rel, tmp_path, request, split_ids):
    extra = {}
    if 'pseudo' in rel:
        extra['train_dataloader.dataset.data_prefix.pseudo_label_path'] = (
            request.getfixturevalue('pseudo_labels'))
    work = str(tmp_path / 'work')
    iters = 2
    args = [_cfg(rel), '--work-dir', work] + _seg_opts(rel, iters, **extra)
    if rel == 'deeplab/largefov_vgg16_voc12aug_gt.py':
        _dist(proj, 'dist_train.sh', *args)  # 2 processes
    else:
        _tool(proj, 'train.py', *args)
    ckpt = osp.join(work, f'iter_{iters}.pth')
    assert osp.isfile(ckpt)
    scalars = _scalars(work)
    assert 'mIoU' in scalars, scalars  # validation ran
    metrics = str(tmp_path / 'metrics.json')
    out = str(tmp_path / 'pred')
    _tool(proj, 'test.py', _cfg(rel), ckpt, '--metrics-out', metrics, '--out', out)
    with open(metrics) as f:
        assert 'mIoU' in json.load(f)
    pngs = sorted(os.listdir(out))
    assert [p[:-4] for p in pngs] == sorted(split_ids['val'])
    with Image.open(osp.join(out, pngs[0])) as im:
        assert im.mode == 'P'  # VOC label format
        assert np.array(im).max() <= 20
    if rel.startswith('deeplab/largefov_'):
        _tool(proj, 'test.py', _cfg(rel), ckpt, '--tta')
