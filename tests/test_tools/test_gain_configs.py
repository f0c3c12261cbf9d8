"""The GAIN VOC configs (``configs/gain/``, docs/methods/gain.md) with the standard
tools, on the tree in the real VOC 2012 + SBD formats (the session fixture
``voc_format_root``, copied) with stand-in ImageNet weights under ``data/pretrained/``
(VGG16 with its fc6 / fc7, as torchvision's file), network access blocked.

Every config trains, is evaluated (its validation: CAM inference, classification mAP and
seed mIoU) and resumes; the GAIN_ext configs on strong-subset lists made by the command
of their header. ``--resume`` continues exactly (plain GAIN and GAIN^{b+p}_ext: the
same weights and losses as the uninterrupted run, with the dropout of fc6 / fc7 and the
random crops), a 2-process ``tools/dist_train.sh`` run gives the weights of a
1-process run with the same total batch, and the plain config's checkpoint is tested,
exported, its seeds evaluated and turned into GAIN's cues.

Besides the schedule, the runs here differ from the shipped configs in (``cpu_opts``):
a batch of 2 (GAIN_ext: 1 strong + 1 weak image) instead of 8, one loader worker
instead of 4 (still restarted every epoch), crops of 128 instead
of 321 (about 10 s per step at 321 on one CPU thread), ``am_start_iter`` 4 instead of
662 (so that the resumed epoch starts the attention-mining loss), and strong subsets of
2 images (``--num 2``) instead of 200. The plain config runs with the shipped head
(fc6 / fc7 of 4096 loaded from the stand-in file: checkpoints of 1.1 GB with the SGD
momentum); the GAIN_ext and the 2-process runs, which test the data, the sampler, the
extra losses and the process count, use fc6 / fc7 of 256 channels initialised at
random (``SMALL_FC``; 0.2 GB checkpoints, about 10 s less per checkpoint).
"""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO
from tests.test_tools.test_voc_configs import (GAIN_CONFIGS, _cfg, _dist,
                                               _scalars, _state_dict, _steps,
                                               _tool, header_command)

PLAIN = 'gain/gain_vgg16_voc.py'
EXT_PIXEL = 'gain/gain_ext-p200_vgg16_voc.py'
EXT_BOX = 'gain/gain_ext-b200_vgg16_voc.py'
EXT_BP = 'gain/gain_ext-bp200_vgg16_voc.py'
CROP = 128
AM_START = 4
# the lists of --num 2, named as the configs' variables expect them
SUBSETS = {
    EXT_PIXEL: dict(pixel_subset='ImageSets/GAIN/pixel_2.txt'),
    EXT_BOX: dict(box_subset='ImageSets/GAIN/box_2.txt'),
    EXT_BP: dict(pixel_subset='ImageSets/GAIN/bp_2_pixel.txt',
                 box_subset='ImageSets/GAIN/bp_2_box.txt'),
}
EXT_LOSSES = {EXT_PIXEL: ('loss_ext_pixel', ), EXT_BOX: ('loss_ext_box', ),
              EXT_BP: ('loss_ext_pixel', 'loss_ext_box')}
VOC = osp.join('data', 'VOCdevkit', 'VOC2012')
SMALL_FC = {'model.head.cls_head.fc_channels': 256,
            'model.head.cls_head.init_cfg': None}
NO_VAL = {'train_cfg.val_begin': 100}  # the runs whose validation adds nothing


@pytest.fixture(scope='module')
def gain_proj(voc_format_root, standin_weights, tmp_path_factory):
    """A project folder (data/, configs/, tools/) with the converted VOC tree and the
    strong-subset lists of the GAIN_ext configs' header command (``--num 2``)."""
    root = tmp_path_factory.mktemp('gain_proj')
    shutil.copytree(osp.join(voc_format_root['root'], 'VOCdevkit'),
                    root / 'data' / 'VOCdevkit', symlinks=True)
    for name in ('tools', 'configs'):
        os.symlink(osp.join(REPO, name), root / name)
    os.symlink(osp.dirname(standin_weights['vgg16-397923af.pth']),
               root / 'data' / 'pretrained')
    cmd = header_command(EXT_PIXEL, 'tools/misc/make_strong_subsets.py')
    start = cmd.index('--num') + 1
    end = next(i for i in range(start, len(cmd)) if cmd[i].startswith('--'))
    cmd[start:end] = ['2']
    assert cmd[0] == 'python' and cmd[1].startswith('tools/')
    _tool(str(root), cmd[1][len('tools/'):], *cmd[2:], threads=1)
    out = root / VOC / 'ImageSets' / 'GAIN'
    for names in SUBSETS.values():
        for path in names.values():
            assert (root / VOC / path).is_file(), sorted(os.listdir(out))
    return str(root)


def cpu_opts(rel, extra=None):
    """``--cfg-options`` of the runs here (module docstring)."""
    from mmwsss.utils.launch import load_config
    cfg = load_config(_cfg(rel))
    opts = {'train_dataloader.batch_size': 2,
            'train_dataloader.num_workers': 1,
            'model.head.am_start_iter': AM_START,
            'default_hooks.logger.interval': 1}
    if cfg.train_dataloader.sampler.type == 'StrongMixSampler':
        opts['train_dataloader.sampler.batch_size'] = 2
        opts['train_dataloader.sampler.num_strong'] = 1
    for i, t in enumerate(cfg.train_dataloader.dataset.pipeline):
        key = f'train_dataloader.dataset.pipeline.{i}'
        if t['type'] == 'RandomResize':
            opts[f'{key}.scale'] = f'(10000,{CROP})'
        elif t['type'] == 'RandomCrop':
            opts[f'{key}.crop_size'] = f'({CROP},{CROP})'
    opts.update(SUBSETS.get(rel, {}))
    if rel != PLAIN:
        opts.update(SMALL_FC)
    opts.update(extra or {})
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def _train(proj, rel, work, epochs, resume=False, validate=True):
    args = [_cfg(rel), '--work-dir', work]
    if resume:
        args.append('--resume')
    extra = {'train_cfg.max_epochs': epochs}
    if not validate:
        extra.update(NO_VAL)
    args += cpu_opts(rel, extra)
    return _tool(proj, 'train.py', *args, threads=1)


def _resume_from_first(src, work):
    """A work dir as a run killed during epoch 2 leaves it."""
    os.makedirs(work)
    shutil.copy(osp.join(src, 'epoch_1.pth'), work)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_1.pth'))


def _assert_same_run(full, resumed):
    """The resumed run (epoch 2) ends with the uninterrupted run's weights, after
    the same logged losses at every step of epoch 2."""
    a = _state_dict(osp.join(full, 'epoch_2.pth'))
    b = _state_dict(osp.join(resumed, 'epoch_2.pth'))
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f'resumed weights differ: {differ[:5]}'
    steps_a, steps_b = _steps(full), _steps(resumed)
    assert sorted(steps_a) == list(range(1, 7)) and sorted(steps_b) == [4, 5, 6]
    for s, rec in steps_b.items():
        losses = {k: v for k, v in rec.items() if k.startswith('loss')}
        assert losses == {k: v for k, v in steps_a[s].items()
                          if k.startswith('loss')}, s
    return steps_a


def _check_am_warmup(steps):
    """L_am is 0 before iteration AM_START (0-based), then on."""
    for s, rec in steps.items():
        assert (rec['loss_am'] > 0) == (s > AM_START), (s, rec['loss_am'])


@pytest.fixture(scope='module')
def plain_runs(gain_proj, tmp_path_factory):
    """Plain GAIN: 2 epochs; and the same run killed after epoch 1 and resumed."""
    full = str(tmp_path_factory.mktemp('gain_full'))
    _train(gain_proj, PLAIN, full, 2)
    resumed = str(tmp_path_factory.mktemp('gain_resumed') / 'work')
    _resume_from_first(full, resumed)
    p = _train(gain_proj, PLAIN, resumed, 2, resume=True, validate=False)
    assert 'resumed epoch: 1' in p.stdout + p.stderr
    return full, resumed


def test_plain_gain_trains_validates_and_resumes_exactly(plain_runs):
    full, resumed = plain_runs
    steps = _assert_same_run(full, resumed)
    _check_am_warmup(steps)
    assert all(np.isfinite(r['loss']) for r in steps.values())
    scalars = _scalars(full)
    assert 'cls/mAP' in scalars and 'seed/mIoU' in scalars, scalars


def test_plain_gain_test_export_seeds_and_cues(plain_runs, gain_proj, tmp_path):
    full, _ = plain_runs
    ckpt = osp.join(full, 'epoch_2.pth')
    metrics = str(tmp_path / 'metrics.json')
    _tool(gain_proj, 'test.py', _cfg(PLAIN), ckpt, '--metrics-out', metrics,
          threads=1)
    with open(metrics) as f:
        m = json.load(f)
    assert 'cls/mAP' in m and 'seed/mIoU' in m, m
    cams = str(tmp_path / 'cams')
    _tool(gain_proj, 'export_cams.py', _cfg(PLAIN), ckpt, '--out', cams,
          threads=1)
    with open(osp.join(gain_proj, VOC, 'ImageSets', 'Segmentation',
                       'train_aug.txt')) as f:
        train_aug = sorted(ln.split()[0] for ln in f if ln.strip())
    assert sorted(n[:-4] for n in os.listdir(cams)) == train_aug
    _tool(gain_proj, 'eval_seeds.py', cams, _cfg(PLAIN), '--no-progress',
          threads=1)
    # GAIN's cues: the config's pseudo_label_rule (GAINCues) with DSS saliency
    out = str(tmp_path / 'cues')
    p = _tool(gain_proj, 'make_pseudo_labels.py', _cfg(PLAIN), cams, '--out',
              out, '--saliency-dir', osp.join(VOC, 'SaliencyDSS'), '--workers',
              '1', '--eval', '--allow-all-ignored', threads=1)
    assert 'GAINCues' in p.stdout + p.stderr
    pngs = sorted(os.listdir(out))
    assert [n[:-4] for n in pngs] == train_aug
    for name in pngs:
        with Image.open(osp.join(out, name)) as im:
            values = set(np.unique(np.array(im)).tolist())
        assert values <= set(range(21)) | {255}, values


@pytest.mark.parametrize('rel', [EXT_PIXEL, EXT_BOX])
def test_gain_ext_config_trains_validates_and_resumes(rel, gain_proj, tmp_path):
    work = str(tmp_path / 'work')
    _train(gain_proj, rel, work, 1, validate=False)
    p = _train(gain_proj, rel, work, 2, resume=True)
    assert 'cls/mAP' in _scalars(work) and 'seed/mIoU' in _scalars(work)
    log = p.stdout + p.stderr
    assert 'resumed epoch: 1' in log
    steps = _steps(work)
    assert sorted(steps) == list(range(1, 7))  # 3 batches of 1 strong + 1 weak
    for key in EXT_LOSSES[rel]:
        assert all(rec[key] > 0 for rec in steps.values()), key
    _check_am_warmup(steps)
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))


def test_gain_ext_bp_resumes_exactly(gain_proj, tmp_path):
    """GAIN^{b+p}_ext: StrongMixSampler, the pixel and box supervision through the
    random crops, resumed after epoch 1: the same run; validated."""
    full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    _train(gain_proj, EXT_BP, full, 2)
    _resume_from_first(full, resumed)
    _train(gain_proj, EXT_BP, resumed, 2, resume=True, validate=False)
    steps = _assert_same_run(full, resumed)
    assert 'cls/mAP' in _scalars(full) and 'seed/mIoU' in _scalars(full)
    # each batch holds one strong image: pixel or box, alternating with the stream
    for rec in steps.values():
        assert ('loss_ext_pixel' in rec) + ('loss_ext_box' in rec) >= 1, rec
    assert any('loss_ext_pixel' in r for r in steps.values()) and \
        any('loss_ext_box' in r for r in steps.values())
    _check_am_warmup(steps)


def test_gain_two_processes_equal_one(gain_proj, tmp_path):
    """tools/dist_train.sh with 2 gloo processes x 1 image = 1 process x 2 images:
    the same weights after 2 steps (up to float rounding), L_am on from the start.
    The data are made deterministic (a fixed resize instead of the random crop, no
    loader workers) and the dropout of fc6 / fc7 off: the ranks draw other random
    numbers than a single process does; fc6 / fc7 are ``SMALL_FC``. Everything else
    is the shipped config."""
    ids = osp.join(gain_proj, VOC, 'ImageSets', 'Segmentation')
    with open(osp.join(ids, 'train_aug.txt')) as f:
        four = [ln.split()[0] for ln in f if ln.strip()][:4]
    with open(osp.join(ids, 'ddp_four.txt'), 'w') as f:
        f.write('\n'.join(four) + '\n')
    cfg = tmp_path / 'gain_ddp.py'
    cfg.write_text(f"""_base_ = [{_cfg(PLAIN)!r}]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({CROP}, {CROP}), keep_ratio=False),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(num_workers=0, dataset=dict(
    ann_file='ImageSets/Segmentation/ddp_four.txt', pipeline=train_pipeline))
model = dict(head=dict(am_start_iter=0, cls_head=dict(
    dropout_ratio=0.0, fc_channels=256, init_cfg=None)))
# a larger step than the recipe's lr 1e-4: the updates of the backbone must be far
# above the float rounding of its weights for the comparison to mean something
optim_wrapper = dict(optimizer=dict(lr=0.01))
train_cfg = dict(max_epochs=1)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(save_optimizer=False))
""")
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    _tool(gain_proj, 'train.py', str(cfg), '--work-dir', one, '--cfg-options',
          'train_dataloader.batch_size=2', threads=1)
    p = _dist(gain_proj, 'dist_train.sh', str(cfg), '--work-dir', two,
              '--cfg-options', 'train_dataloader.batch_size=1')
    assert 'world_size: 2' in p.stdout + p.stderr or \
        'Distributed launcher: pytorch' in p.stdout + p.stderr
    steps = _steps(one)
    assert sorted(steps) == [1, 2] and all(r['loss_am'] > 0
                                           for r in steps.values())
    a = _state_dict(osp.join(one, 'epoch_1.pth'))
    b = _state_dict(osp.join(two, 'epoch_1.pth'))
    from mmwsss.models.backbones import convert_vgg16_state_dict
    init_file = torch.load(osp.join(gain_proj, 'data', 'pretrained',
                                    'vgg16-397923af.pth'), weights_only=True)
    init = {f'backbone.{k}': v
            for k, v in convert_vgg16_state_dict(init_file).items()}
    assert a.keys() == b.keys() and set(init) < set(a)
    for k in a:
        diff = (a[k] - b[k]).abs().max().item()
        if k in init:  # both moved from the ImageNet file, by the same step
            update = (a[k] - init[k]).abs().max().item()
            assert update > 0 and diff <= 0.05 * update, (k, diff, update)
        else:  # fc6-fc8: the same seeded initialisation (normal, std 0.01)
            assert diff <= 1e-7, (k, diff)


def test_gain_configs_are_consistent():
    """What the configs promise in their comments and docs/methods/gain.md."""
    from mmwsss.utils.launch import load_config
    assert sorted(GAIN_CONFIGS) == sorted([PLAIN, EXT_PIXEL, EXT_BOX, EXT_BP])
    for rel in GAIN_CONFIGS:
        cfg = load_config(_cfg(rel))
        head, loader = cfg.model.head, cfg.train_dataloader
        assert head.type == 'GAINHead' and head.cls_head.type == 'VGGFCHead'
        assert cfg.model.backbone.with_last_pool is False  # relu5_3
        for init in (cfg.model.backbone.init_cfg, head.cls_head.init_cfg):
            assert init.checkpoint == 'data/pretrained/vgg16-397923af.pth'
        assert (head.sigma, head.omega, head.alpha, head.ext_weight) == \
            (0.5, 10.0, 1.0, 10.0)
        assert cfg.pseudo_label_rule.type == 'GAINCues'
        assert cfg.pseudo_label_rule.fg_ratio == 0.2
        # exact --resume: a fixed seed, workers restarted each epoch, ReseedHook
        assert cfg.randomness.seed is not None
        assert loader.persistent_workers is False
        assert [h['type'] for h in cfg.custom_hooks] == ['ReseedHook']
        types = [t['type'] for t in loader.dataset.pipeline]
        crop = next(t for t in loader.dataset.pipeline
                    if t['type'] == 'RandomCrop')
        assert crop.get('cat_max_ratio', 1.0) == 1.0 and \
            tuple(crop.crop_size) == (321, 321)
        subsets = loader.dataset.get('strong_subsets')
        if rel == PLAIN:
            assert not head.ext_supervision and subsets is None
            assert 'LoadExtraSupervision' not in types
            continue
        assert 'LoadAnnotations' not in types and \
            types.index('LoadExtraSupervision') == 1
        assert loader.sampler.type == 'StrongMixSampler'
        assert loader.sampler.batch_size == loader.batch_size == cfg.batch_size
        assert set(head.ext_supervision) == set(subsets)
        for key, path in subsets.items():
            assert re.fullmatch(r'ImageSets/GAIN/(bp_200_)?' + key +
                                r'(_200)?\.txt', path), path
        if 'box' in subsets:
            assert loader.dataset.data_prefix.saliency_path == 'SaliencyDSS'
