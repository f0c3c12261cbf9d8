"""The VOC path, as a new user takes it: every command of ``docs/getting_started.md`` and
every shipped VOC config (train, validate / test, export, resume from the **first**
checkpoint), on a tree in the real VOC 2012 + SBD on-disk formats
(:func:`mmwsss.datasets.format_trees.make_voc_format_tree`, converted by the doc's own
converter command) with stand-in ImageNet weights under ``data/pretrained/`` written the
documented way from randomly initialised models.

Everything runs from a project folder laid out as the doc says (``data/VOCdevkit``,
``data/benchmark_RELEASE``, ``data/pretrained``, ``configs/``, ``tools/``), so the configs'
own relative paths are used, with Python-level network access blocked
(``tests/no_network``): nothing may download.

The doc's commands run as written except (``adapt``): process counts (``dist_*.sh ... 8``,
``--workers 8``, ``--nproc 8``) become 2, training gets a short schedule (2 epochs / 2
iterations; ``epoch_15.pth`` -> ``epoch_2.pth``, ``iter_20000.pth`` -> ``iter_2.pth``), and
the classifiers' CAM inference runs at scale 1 (``CAM_SCALES``). Otherwise
``--cfg-options`` only shorten the schedule, and the ResNet-101 segmentors train with a
batch of 1 (``CPU_BATCH``). docs/datasets.md lists these exceptions with their reasons.
"""
import glob
import json
import os
import os.path as osp
import re
import shlex
import shutil
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
DOC = osp.join(REPO, 'docs', 'getting_started.md')
NPROC = '2'

# What this module runs (the walkthrough of the doc, then the tests below);
# test_every_shipped_config_is_run checks that the list is complete, so a new config
# under configs/ needs a run here.
CLASSIFIER_CONFIGS = ('cam/cam_vgg16_voc.py', 'oaa/oaa_vgg16_voc.py',
                      'oaa/oaa_drop_vgg16_voc.py', 'oaa/oaa_iam_vgg16_voc.py',
                      'oaa/oaa_drop_iam_vgg16_voc.py')
# GAIN (tests/test_tools/test_gain_configs.py)
GAIN_CONFIGS = ('gain/gain_vgg16_voc.py', 'gain/gain_ext-p200_vgg16_voc.py',
                'gain/gain_ext-b200_vgg16_voc.py',
                'gain/gain_ext-bp200_vgg16_voc.py')
# EDAM (tests/test_tools/test_edam_configs.py)
EDAM_CONFIGS = ('edam/edam_resnet38d_voc.py', 'edam/edam_resnet38d_coco.py')
# VWL (tests/test_tools/test_vwl_configs.py)
VWL_CONFIGS = ('vwl/vwl_l_r101_voc.py', 'vwl/vwl_m_r101_voc.py',
               'vwl/vwl_l_r101_coco.py', 'vwl/vwl_m_r101_coco.py')
SEGMENTOR_CONFIGS = ('deeplab/largefov_vgg16_voc12aug_gt.py',
                     'deeplab/largefov_vgg16_voc12aug_pseudo.py',
                     'deeplab/deeplabv2_r101_voc12aug_gt.py',
                     'deeplab/deeplabv2_r101_voc12aug_pseudo.py',
                     'deeplab/deeplabv2_r101-v1c_voc12aug_pseudo.py',
                     'deeplab/deeplabv3plus_r101_voc12aug_pseudo.py')
# The ResNet-101 segmentors' recipe batch (10 crops of 321 x 3 MSC scales; 4 crops of
# 512 for DeepLabV3+) takes minutes per iteration on 2 CPU cores: they train with one
# (DeepLabV3+: two) images per step here. Nothing else differs from the shipped configs.
CPU_BATCH = {
    'deeplab/deeplabv2_r101_voc12aug_gt.py': 1,
    'deeplab/deeplabv2_r101_voc12aug_pseudo.py': 1,
    'deeplab/deeplabv2_r101-v1c_voc12aug_pseudo.py': 1,
    # DeepLabV3+'s image-pooling branch has a BatchNorm over a 1 x 1 map: it needs
    # 2 images per step in training
    'deeplab/deeplabv3plus_r101_voc12aug_pseudo.py': 2,
}
# The classifiers' CAM inference (validation, test, export) runs 4 scales (up to 2x,
# i.e. 1000 x 750 for a 500 x 375 image) x flip through an OS8 VGG16: about 30 s per VOC
# image on 2 CPU cores. Here it runs at scale 1 (with flip); the multi-scale code is
# the same as for the toy configs, which run it as shipped (test_cam_pipeline, demo).
CAM_SCALES = {'model.test_cfg.scales': '[1.0]'}
CLASSIFIER_DIRS = ('configs/cam/', 'configs/oaa/')


def _cfg(rel):
    return osp.join(CONFIG_DIR, rel)


def _opts(**kv):
    return ['--cfg-options'] + [f'{k}={v}' for k, v in kv.items()]


def _check(p, what):
    assert p.returncode == 0, (f'{what}\n' + p.stdout[-4000:] + '\n' +
                               p.stderr[-6000:])
    return p


def _tool(proj, script, *args, timeout=900, threads=2):
    p = subprocess.run([sys.executable, osp.join(REPO, 'tools', script), *args],
                       cwd=proj, env=no_network_env(threads), capture_output=True,
                       text=True, timeout=timeout)
    return _check(p, f'{script} {shlex.join(args)}')


def _dist(proj, script, *args, nproc=2, timeout=900):
    env = no_network_env(1)
    env['PORT'] = str(_free_port())
    env['PYTHON'] = sys.executable
    p = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args[:1],
                        str(nproc), *args[1:]],
                       cwd=proj, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return _check(p, f'{script} {shlex.join(args)}')



def killed_after(src, work, ckpt):
    """A work dir as a run killed after saving ``ckpt`` leaves it."""
    os.makedirs(work)
    try:
        os.link(osp.join(src, ckpt), osp.join(work, ckpt))
    except OSError:
        shutil.copy(osp.join(src, ckpt), work)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, ckpt))


def header_command(rel, script):
    """The ``python <script> ...`` command of a config's header comment (with its
    ``\\`` continuations), split as the shell would (``python`` and the script
    included)."""
    with open(_cfg(rel)) as f:
        lines = [ln[1:].strip() for ln in f if ln.startswith('#')]
    for i, line in enumerate(lines):
        if line.startswith(f'python {script}'):
            cmd = line
            while cmd.endswith('\\'):
                i += 1
                cmd = cmd[:-1] + ' ' + lines[i]
            return shlex.split(cmd)
    raise AssertionError(f'{rel}: no `python {script}` in the header')


def iter_cpu_opts(rel, crop, batch, extra=None):
    """``--cfg-options`` that run an iteration-based VOC / COCO config on 2 CPU
    cores: ``batch`` images, one loader worker, crops (and the pad size) of
    ``crop``, 4 iterations with validation at the end, a checkpoint every 2, CAM
    inference at scale 1; then ``extra``."""
    from mmwsss.utils.launch import load_config
    cfg = load_config(_cfg(rel))
    opts = {'train_dataloader.batch_size': batch,
            'train_dataloader.num_workers': 1,
            'model.data_preprocessor.size': f'({crop},{crop})',
            'train_cfg.max_iters': 4,
            'train_cfg.val_interval': 4,
            'default_hooks.checkpoint.interval': 2,
            'default_hooks.logger.interval': 1,
            'model.test_cfg.scales': '[1.0]'}
    crops = [i for i, t in enumerate(cfg.train_dataloader.dataset.pipeline)
             if t['type'] == 'RandomCrop']
    assert len(crops) == 1, cfg.train_dataloader.dataset.pipeline
    opts[f'train_dataloader.dataset.pipeline.{crops[0]}.crop_size'] = \
        f'({crop},{crop})'
    opts.update(extra or {})
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def coco_resume_run(proj, coco_root, work, train):
    """A classifier config on the COCO tree ``coco_root`` (linked into ``proj``):
    ``train(work, resume=False, **cfg_options)`` for 2 iterations without
    validation, then ``--resume``-d to 4 with validation on the first val image
    (CAM inference on a COCO-sized image is slow on a CPU); checks the resume,
    the validation metrics and the losses, returns the iteration-4 state dict."""
    coco = osp.join(proj, 'data', 'coco2014')
    if not osp.islink(coco):
        os.symlink(coco_root, coco)
    train(work, **{'train_cfg.max_iters': 2, 'train_cfg.val_begin': 100})
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    p = train(work, resume=True, **{'val_dataloader.dataset.indices': 1})
    log = p.stdout + p.stderr
    assert 'resumed' in log.lower() and 'iter_2.pth' in log, log[-3000:]
    scalars = _scalars(work)
    assert 'cls/mAP' in scalars and 'seed/mIoU' in scalars, scalars
    steps = _steps(work)
    assert sorted(steps) == [1, 2, 3, 4]
    assert all(np.isfinite(r['loss']) for r in steps.values())
    return _state_dict(osp.join(work, 'iter_4.pth'))

def _steps(work):
    """{step: logged training values} of a work dir's runs."""
    out = {}
    for f in sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))):
        with open(f) as fh:
            for line in fh:
                rec = json.loads(line)
                if 'loss' in rec:
                    out[rec['step']] = rec
    return out


def _state_dict(path):
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def _scalars(work_dir):
    """The last logged values of every key (``<timestamp>/vis_data/scalars.json``)."""
    out = {}
    for f in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(f) as fh:
            for line in fh:
                out.update(json.loads(line))
    return out


def _ids(proj, name):
    path = osp.join(proj, 'data', 'VOCdevkit', 'VOC2012', 'ImageSets',
                    'Segmentation', name)
    with open(path) as f:
        return sorted(ln.split()[0] for ln in f if ln.strip())


# ------------------------------------------------------ the getting-started doc
def doc_commands(path=DOC):
    """The shell commands of the doc's ``bash`` blocks (continuations joined,
    comments dropped), in order."""
    with open(path) as f:
        text = f.read()
    cmds = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        cur = ''
        for line in block.splitlines():
            if line.lstrip().startswith('#'):
                continue
            line = re.sub(r'\s+#.*$', '', line)
            if line.endswith('\\'):
                cur += line[:-1] + ' '
                continue
            cur = (cur + line).strip()
            if cur:
                cmds.append(re.sub(r'\s+', ' ', cur))
            cur = ''
    return cmds


def _short(s):
    return s.replace('epoch_15.pth', 'epoch_2.pth').replace('iter_20000.pth',
                                                            'iter_2.pth')


def adapt(cmd):
    """The doc command as run here (module docstring): a token list, or a
    ``(name, value)`` pair for a shell variable assignment."""
    m = re.fullmatch(r'(\w+)=(\S+)', cmd)
    if m:
        return (m.group(1), _short(m.group(2)))
    tokens = [_short(t) for t in shlex.split(cmd)]
    script = osp.basename(tokens[1] if tokens[0] == 'python' else tokens[0])
    for flag in ('--workers', '--nproc'):
        if flag in tokens:
            tokens[tokens.index(flag) + 1] = NPROC
    if script.startswith('dist_'):
        tokens[2 if script == 'dist_train.sh' else 3] = NPROC
    config = next((t for t in tokens if t.startswith('configs/')), '')
    options = []
    if script in ('train.py', 'dist_train.sh'):
        if config.startswith(CLASSIFIER_DIRS):
            options += ['train_cfg.max_epochs=2', 'model.test_cfg.scales=[1.0]']
        else:
            options += ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                        'default_hooks.checkpoint.interval=2']
    elif (script in ('test.py', 'dist_test.sh', 'export_cams.py',
                     'dist_export_cams.sh') and config.startswith(CLASSIFIER_DIRS)):
        options += ['model.test_cfg.scales=[1.0]']
    if options:
        tokens += ['--cfg-options'] + options
    if tokens[0] == 'python':
        tokens[0] = sys.executable
    return tokens


@pytest.fixture(scope='module')
def proj(standin_weights, tmp_path_factory):
    """A project folder as docs/getting_started.md lays it out, with an unconverted
    VOC 2012 + SBD tree (the doc's first command converts it)."""
    from mmwsss.datasets.format_trees import make_voc_format_tree
    root = tmp_path_factory.mktemp('voc_proj')
    make_voc_format_tree(str(root / 'data'), seed=0, num_voc_train=3, num_voc_val=2,
                         num_sbd_only=2)
    for name in ('tools', 'configs'):
        os.symlink(osp.join(REPO, name), root / name)
    weights = {osp.dirname(p) for p in standin_weights.values()}
    assert len(weights) == 1
    os.symlink(weights.pop(), root / 'data' / 'pretrained')
    return str(root)


@pytest.fixture(scope='module')
def walkthrough(proj):
    """Every command of docs/getting_started.md, in order (see ``adapt``)."""
    env = no_network_env(1)
    env['PYTHON'] = sys.executable
    ran = []
    for cmd in doc_commands():
        todo = adapt(cmd)
        if isinstance(todo, tuple):
            env[todo[0]] = todo[1]
            continue
        todo = [env.get(t[1:], t) if t.startswith('$') else t for t in todo]
        env['PORT'] = str(_free_port())
        p = subprocess.run(todo, cwd=proj, env=env, capture_output=True, text=True,
                           timeout=900)
        _check(p, f'docs/getting_started.md: {cmd}\nran: {shlex.join(todo)}')
        ran.append(cmd)
    return ran


def test_doc_commands_are_found():
    scripts = set()
    for cmd in doc_commands():
        todo = adapt(cmd)
        if isinstance(todo, list):
            scripts.add(osp.basename(todo[1] if todo[0] == sys.executable else
                                     todo[0]))
    assert {'voc_aug.py', 'train.py', 'dist_train.sh', 'export_cams.py',
            'dist_export_cams.sh', 'export_oaa_maps.py', 'eval_seeds.py',
            'make_pseudo_labels.py', 'test.py', 'dist_test.sh'} <= scripts, scripts


def test_getting_started_commands(walkthrough, proj):
    assert len(walkthrough) >= 15
    train_aug = _ids(proj, 'train_aug.txt')
    work = osp.join(proj, 'work_dirs')
    for folder in ('oaa_vgg16_voc/oaa_maps', 'oaa_vgg16_voc/cams',
                   'oaa_iam_vgg16_voc/cams'):
        assert sorted(f[:-4] for f in os.listdir(osp.join(work, folder))) == \
            train_aug, folder
    labels = osp.join(proj, 'data', 'VOCdevkit', 'VOC2012', 'PseudoLabels', 'oaa')
    assert len(os.listdir(labels)) == len(train_aug)
    scalars = _scalars(osp.join(work, 'oaa_vgg16_voc'))
    assert 'cls/mAP' in scalars and 'seed/mIoU' in scalars, scalars
    seg = osp.join(work, 'largefov_vgg16_voc12aug_pseudo')
    assert osp.isfile(osp.join(seg, 'iter_2.pth'))
    assert 'mIoU' in _scalars(seg)


def test_every_shipped_config_is_run():
    shipped = sorted(
        osp.relpath(p, CONFIG_DIR)
        for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
        if '_base_' not in p and not osp.relpath(p, CONFIG_DIR).startswith('toy'))
    assert shipped == sorted(CLASSIFIER_CONFIGS + GAIN_CONFIGS + EDAM_CONFIGS +
                             VWL_CONFIGS + SEGMENTOR_CONFIGS)
    # the toy configs are run by the toy tests and the demo
    tests_text = ''.join(
        open(p).read()
        for p in glob.glob(osp.join(REPO, 'tests', '**', '*.py'), recursive=True))
    tests_text += open(osp.join(REPO, 'tools', 'demo.sh')).read()
    for p in glob.glob(osp.join(CONFIG_DIR, 'toy', '*.py')):
        assert osp.basename(p) in tests_text, f'{p} is run by no test'


# ---------------------------------------------------------------- classifiers
def _train_epochs(proj, rel, work, epochs, resume=False, dist=False, **extra):
    args = [_cfg(rel), '--work-dir', work]
    if resume:
        args.append('--resume')
    args += _opts(**{'train_cfg.max_epochs': epochs,
                     'default_hooks.logger.interval': 1}, **CAM_SCALES, **extra)
    if dist:
        return _dist(proj, 'dist_train.sh', *args)
    return _tool(proj, 'train.py', *args)


def _resumed_from_first(p):
    log = p.stdout + p.stderr
    assert 'epoch_1.pth' in log and re.search(r'[Rr]esum', log), log[-3000:]


def test_oaa_resumes_from_first_checkpoint(walkthrough, proj, tmp_path):
    """The first checkpoint of an OAA run (no map yet with start_epoch=1: empty
    arrays) loads under weights_only, exports, and resumes (a run killed in epoch 2)."""
    rel = 'oaa/oaa_vgg16_voc.py'
    work = str(tmp_path / 'oaa')
    src = osp.join(proj, 'work_dirs', 'oaa_vgg16_voc')
    os.makedirs(work)
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        shutil.copy(osp.join(src, name), work)
    first = osp.join(work, 'epoch_1.pth')
    ckpt = torch.load(first, map_location='cpu', weights_only=True)
    assert ckpt['oaa_state']['cumulative']['ids'].size == 0
    _tool(proj, 'export_oaa_maps.py', first, '--out', str(tmp_path / 'maps1'))
    kill_after_first_epoch(work)
    _resumed_from_first(_train_epochs(proj, rel, work, 2, resume=True))
    assert sorted(f[:-4] for f in os.listdir(osp.join(work, 'oaa_maps'))) == \
        _ids(proj, 'train_aug.txt')


@pytest.fixture(scope='module')
def oaa_drop_run(walkthrough, proj, tmp_path_factory):
    """OAA++ as shipped for 2 epochs, killed after the first (no map yet), resumed
    from it with 2 processes."""
    rel = 'oaa/oaa_drop_vgg16_voc.py'
    work = str(tmp_path_factory.mktemp('oaa_drop'))
    _train_epochs(proj, rel, work, 2)
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu',
                      weights_only=True)
    assert ckpt['oaa_state']['cumulative']['ids'].size == 0
    kill_after_first_epoch(work)
    _resumed_from_first(_train_epochs(proj, rel, work, 2, resume=True, dist=True))
    return work


def test_oaa_drop_config(oaa_drop_run, proj, tmp_path):
    rel = 'oaa/oaa_drop_vgg16_voc.py'
    train_aug = _ids(proj, 'train_aug.txt')
    assert sorted(f[:-4] for f in os.listdir(osp.join(oaa_drop_run, 'oaa_maps'))) \
        == train_aug
    scalars = _scalars(oaa_drop_run)
    assert 'cls/mAP' in scalars and 'seed/mIoU' in scalars, scalars
    maps = str(tmp_path / 'maps')
    _tool(proj, 'export_oaa_maps.py', osp.join(oaa_drop_run, 'epoch_2.pth'), '--out',
          maps)
    assert len(os.listdir(maps)) == len(train_aug)
    res = str(tmp_path / 'seeds.json')
    _tool(proj, 'eval_seeds.py', maps, _cfg(rel), '--out', res, '--no-progress')
    with open(res) as f:
        assert 'miou' in json.dumps(json.load(f)).lower()


def test_cam_config(walkthrough, proj, tmp_path):
    rel = 'cam/cam_vgg16_voc.py'
    work = str(tmp_path / 'work')
    _train_epochs(proj, rel, work, 1)
    ckpt = osp.join(work, 'epoch_1.pth')
    metrics = str(tmp_path / 'metrics.json')
    _tool(proj, 'test.py', _cfg(rel), ckpt, '--metrics-out', metrics,
          *_opts(**CAM_SCALES))
    with open(metrics) as f:
        m = json.load(f)
    assert 'cls/mAP' in m and 'seed/mIoU' in m, m
    cams = str(tmp_path / 'cams')
    _tool(proj, 'export_cams.py', _cfg(rel), ckpt, '--out', cams,
          *_opts(**CAM_SCALES))
    assert sorted(f[:-4] for f in os.listdir(cams)) == _ids(proj, 'train_aug.txt')
    _tool(proj, 'eval_seeds.py', cams, _cfg(rel), '--no-progress')


def test_oaa_export_says_nothing_about_training_state(walkthrough, proj):
    """Exporting CAMs with an OAA config trains nothing: no OAA hook message."""
    p = _tool(proj, 'export_cams.py', _cfg('oaa/oaa_vgg16_voc.py'),
              osp.join(proj, 'work_dirs', 'oaa_vgg16_voc', 'epoch_2.pth'), '--out',
              osp.join(proj, 'work_dirs', 'oaa_vgg16_voc', 'cams'), '--overwrite',
              *_opts(**CAM_SCALES))
    assert 'OAAHook:' not in p.stdout + p.stderr  # its messages start so


def test_iam_resumes_with_moved_targets(walkthrough, proj, tmp_path):
    """OAA+ of the walkthrough, killed after epoch 1 and resumed with its attention
    targets moved elsewhere, given with the config's top-level ``attention_targets``
    variable (it used to change nothing: the variable is substituted at parse time)."""
    rel = 'oaa/oaa_iam_vgg16_voc.py'
    moved = str(tmp_path / 'targets')
    shutil.copytree(osp.join(proj, 'work_dirs', 'oaa_vgg16_voc', 'oaa_maps'), moved)
    work = str(tmp_path / 'iam')
    os.makedirs(work)
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        shutil.copy(osp.join(proj, 'work_dirs', 'oaa_iam_vgg16_voc', name), work)
    kill_after_first_epoch(work)
    p = _train_epochs(proj, rel, work, 2, resume=True, attention_targets=moved)
    _resumed_from_first(p)
    assert f"attention_targets={moved!r}" in p.stdout + p.stderr


def test_oaa_drop_iam_config(oaa_drop_run, proj, tmp_path):
    """OAA+++ on the OAA++ maps: epoch 1, resumed from it to epoch 2, CAMs exported and
    evaluated."""
    rel = 'oaa/oaa_drop_iam_vgg16_voc.py'
    maps = osp.join(oaa_drop_run, 'oaa_maps')
    work = str(tmp_path / 'work')
    _train_epochs(proj, rel, work, 1, attention_targets=maps)
    _resumed_from_first(_train_epochs(proj, rel, work, 2, resume=True,
                                      attention_targets=maps))
    cams = str(tmp_path / 'cams')
    _tool(proj, 'export_cams.py', _cfg(rel), osp.join(work, 'epoch_2.pth'), '--out',
          cams, '--cfg-options', f'attention_targets={maps}')
    assert len(os.listdir(cams)) == len(_ids(proj, 'train_aug.txt'))
    _tool(proj, 'eval_seeds.py', cams, _cfg(rel), '--split', 'val', '--no-progress')


def test_attention_targets_override_reaches_the_pipeline(tmp_path):
    from mmwsss.utils.launch import load_config
    for rel in ('oaa/oaa_iam_vgg16_voc.py', 'oaa/oaa_drop_iam_vgg16_voc.py'):
        cfg = load_config(_cfg(rel), {'attention_targets': str(tmp_path)})
        # the folder is the dataset's data_prefix key; the transform reads it
        assert cfg.train_dataloader.dataset.data_prefix.attention_path == \
            str(tmp_path), rel
        (t, ) = [t for t in cfg.train_dataloader.dataset.pipeline
                 if t['type'] == 'LoadAttentionTargets']
        assert 'cam_dir' not in t, rel
    cfg = load_config(_cfg('cam/cam_vgg16_voc.py'), {'data_root': '/x/VOC2012'})
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == '/x/VOC2012'


# ----------------------------------------------------------------- segmentors
def _seg_opts(rel, iters):
    kv = {'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
          'default_hooks.checkpoint.interval': iters,
          'default_hooks.logger.interval': 1}
    if rel in CPU_BATCH:
        kv['train_dataloader.batch_size'] = CPU_BATCH[rel]
    return _opts(**kv)


@pytest.mark.parametrize('rel', [
    r for r in SEGMENTOR_CONFIGS if r != 'deeplab/largefov_vgg16_voc12aug_pseudo.py'
])  # largefov_vgg16_voc12aug_pseudo.py: every command of the walkthrough
def test_segmentor_config(walkthrough, proj, rel, tmp_path):
    """Train (pseudo-label configs: on the walkthrough's PseudoLabels/oaa, the
    configs' default folder), validate, test with --out (VOC palette PNGs)."""
    work = str(tmp_path / 'work')
    iters = 2
    args = [_cfg(rel), '--work-dir', work] + _seg_opts(rel, iters)
    if rel == 'deeplab/largefov_vgg16_voc12aug_gt.py':
        _dist(proj, 'dist_train.sh', *args)  # 2 processes
    else:
        _tool(proj, 'train.py', *args)
    ckpt = osp.join(work, f'iter_{iters}.pth')
    assert osp.isfile(ckpt)
    assert 'mIoU' in _scalars(work)  # validation ran
    metrics = str(tmp_path / 'metrics.json')
    out = str(tmp_path / 'pred')
    _tool(proj, 'test.py', _cfg(rel), ckpt, '--metrics-out', metrics, '--out', out)
    with open(metrics) as f:
        assert 'mIoU' in json.load(f)
    pngs = sorted(os.listdir(out))
    assert [p[:-4] for p in pngs] == _ids(proj, 'val.txt')
    with Image.open(osp.join(out, pngs[0])) as im:
        assert im.mode == 'P'  # the VOC label format
        assert np.array(im).max() <= 20
