"""The VWL configs (``configs/vwl/``, docs/methods/vwl.md) with the standard tools, on
the trees in the real VOC 2012 + SBD and MS-COCO 2014 formats (the session fixtures
``voc_format_root``, copied, and ``coco_format_root``) with the stand-in ImageNet
ResNet-101 (``data/pretrained/resnet101-5d3b4d8f.pth``: a seeded random torchvision
``resnet101`` state dict, BN statistics calibrated, residual branches' last BN at zero),
network access blocked.

* The configs as built: the optimiser's groups (lr 0.01 / 0.1 for the head, the learned
  codebook included, weight decay 1e-4 everywhere, momentum 0.9), the frozen stages
  (VWL-L: stem + layer1-2; VWL-M: the stem), the training pipeline's long-side resize to
  320-640 keeping the ratio, then the flip and crop.
* VOC, VWL-L and VWL-M: 4 iterations (validation at the end: CAM inference,
  classification mAP, seed mIoU); the same run killed after the iteration-2 checkpoint
  and ``--resume``-d ends with exactly the uninterrupted run's weights and losses
  (VWL-M: the memory bank ``head.codebook.codebook`` too, bit for bit); the frozen
  parts and every BN statistic stay as loaded from the stand-in file. The checkpoint
  exports CAMs, the seeds are evaluated and turned into pseudo labels with the
  config's rule (threshold 0.15 + VWL's CRF), each with the header's own command.
* VWL-M with ``tools/dist_train.sh``, 2 gloo processes x 2 images = 1 process x 4
  images: both ranks hold the same bank after every step (the all-reduce), equal to
  the 1-process bank of the same global batch up to float rounding.
* COCO, VWL-L and VWL-M: 2 iterations, then ``--resume``-d to 4 with validation (on
  one val image).

Besides the schedule (``train_cfg.max_iters`` 4, a checkpoint every 2 iterations), the
runs differ from the shipped configs in (``cpu_opts``): a batch of 2 images instead of
16, one loader worker instead of 8, crops of 128 (``RandomCrop.crop_size`` and
``model.data_preprocessor.size``, the pad size) instead of 512 -- ResNet-101 on 2 CPU
cores -- and the CAM inference of validation / export at scale 1 (with flip) instead
of 1, 0.5, 1.5, 2 (``model.test_cfg.scales=[1.0]``). The poly schedule is the shipped
one (3,966 iterations). The pseudo-label commands take ``--allow-all-ignored``: the
weights are random.
"""
import functools
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO
from tests.test_tools.test_voc_configs import (VWL_CONFIGS, _cfg, _dist,
                                               _scalars, _state_dict, _steps,
                                               _tool, coco_resume_run,
                                               header_command, iter_cpu_opts,
                                               killed_after)

VOC_L = 'vwl/vwl_l_r101_voc.py'
VOC_M = 'vwl/vwl_m_r101_voc.py'
COCO_L = 'vwl/vwl_l_r101_coco.py'
COCO_M = 'vwl/vwl_m_r101_coco.py'
CROP = 128
BATCH = 2
VOC = osp.join('data', 'VOCdevkit', 'VOC2012')
WEIGHTS = 'resnet101-5d3b4d8f.pth'
NO_VAL = {'train_cfg.val_begin': 100}  # the runs whose validation adds nothing
# frozen parameters (MMSeg ResNet frozen_stages): VWL-L 2, VWL-M 0
FROZEN = {VOC_L: ('conv1.', 'bn1.', 'layer1.', 'layer2.'),
          VOC_M: ('conv1.', 'bn1.')}
BANK = 'head.codebook.codebook'


@pytest.fixture(scope='module')
def vwl_proj(voc_format_root, tmp_path_factory):
    """A project folder (data/, configs/, tools/) with the converted VOC tree and
    the stand-in torchvision ResNet-101 under data/pretrained/ (the one file of
    ``make_standin_weights`` the VWL configs read: the session fixture
    ``standin_weights`` writes all five, 1.5 GB, in about 2 minutes)."""
    from mmwsss.datasets.format_trees import make_standin_weights
    root = tmp_path_factory.mktemp('vwl_proj')
    shutil.copytree(osp.join(voc_format_root['root'], 'VOCdevkit'),
                    root / 'data' / 'VOCdevkit', symlinks=True)
    for name in ('tools', 'configs'):
        os.symlink(osp.join(REPO, name), root / name)
    make_standin_weights(str(root / 'data' / 'pretrained'), seed=0,
                         names=[WEIGHTS])
    return str(root)


def cpu_opts(rel, extra=None):
    """``--cfg-options`` of the runs here (module docstring)."""
    return iter_cpu_opts(rel, CROP, BATCH, extra)


def _train(proj, rel, work, resume=False, **extra):
    args = [_cfg(rel), '--work-dir', work]
    if resume:
        args.append('--resume')
    return _tool(proj, 'train.py', *args, *cpu_opts(rel, extra), threads=2,
                 timeout=1200)






def _replace_arg(args, flag, value):
    i = args.index(flag)
    return args[:i + 1] + [value] + args[i + 2:]


# ------------------------------------------------------------------ as built
@pytest.mark.parametrize('rel', [VOC_L, VOC_M])
def test_optimizer_groups_and_frozen_stages(rel):
    """lr 0.01 for the backbone, 10x for every head parameter (the learned
    codebook of VWL-L included; VWL-M's bank is a buffer), weight decay 1e-4 on
    every group, momentum 0.9 (the paper); the frozen stages get no gradient."""
    import mmwsss  # noqa: F401
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from mmwsss.registry import MODELS
    from mmwsss.utils.launch import load_config
    init_default_scope('mmwsss')
    cfg = load_config(_cfg(rel))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    lrs = {}
    for group in wrapper.optimizer.param_groups:
        assert group['weight_decay'] == pytest.approx(1e-4)
        assert group['momentum'] == pytest.approx(0.9)
        for p in group['params']:
            lrs[names[id(p)]] = group['lr']
    assert set(lrs) == set(names.values())
    for name, lr in lrs.items():
        assert lr == pytest.approx(0.1 if name.startswith('head.') else 0.01), \
            name
    head = {n for n in lrs if n.startswith('head.')}
    if rel == VOC_L:
        assert head == {'head.classifier.weight', 'head.word_classifier.weight',
                        'head.w2i_classifier.weight', 'head.codebook.weight'}
    else:
        assert head == {'head.classifier.weight', 'head.word_classifier.weight'}
        assert BANK in dict(model.named_buffers())
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    expected = {n for n in names.values()
                if n[len('backbone.'):].startswith(FROZEN[rel])}
    assert frozen == expected and frozen
    # every BN in eval mode (norm_eval): the statistics stay as loaded
    bns = [m for m in model.backbone.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert model.backbone.strides == (1, 2, 2, 1)
    assert model.backbone.dilations == (1, 1, 1, 1)
    x = torch.zeros(1, 3, 64, 96)
    with torch.no_grad():
        assert model.extract_feat(x)[-1].shape == (1, 2048, 4, 6)  # OS16


def test_training_pipeline_resizes_the_long_side():
    """RandomResize(scale=(640, 640), ratio_range=(0.5, 1.0), keep_ratio): the long
    side becomes 320-640 with the aspect ratio kept (the official random
    long-side resize), then flip and a 512 crop."""
    import mmwsss  # noqa: F401
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope

    from mmwsss.utils.launch import load_config
    init_default_scope('mmwsss')
    cfg = load_config(_cfg(VOC_L))
    steps = cfg.train_dataloader.dataset.pipeline
    assert [t['type'] for t in steps] == [
        'LoadImageFromFile', 'RandomResize', 'RandomFlip', 'RandomCrop',
        'PackWSSSInputs']
    resize = Compose([steps[1]])
    flip_crop = Compose(steps[2:4])
    rng = np.random.RandomState(0)
    np.random.seed(0)
    longs = []
    for h, w in [(375, 500), (500, 333), (480, 640), (200, 150)] * 8:
        img = rng.randint(0, 255, (h, w, 3)).astype(np.uint8)
        out = resize(dict(img=img, img_shape=(h, w), ori_shape=(h, w)))
        nh, nw = out['img'].shape[:2]
        long_side = max(nh, nw)
        assert 320 <= long_side <= 640, (h, w, nh, nw)
        assert abs(nw - w * long_side / max(h, w)) <= 1 and \
            abs(nh - h * long_side / max(h, w)) <= 1, (h, w, nh, nw)
        longs.append(long_side)
        out = flip_crop(out)
        assert out['img'].shape[:2] == (min(512, nh), min(512, nw))
    assert max(longs) - min(longs) > 100  # drawn, not fixed
    assert cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.model.data_preprocessor.pad_val == 0


# ------------------------------------------------------------------------- VOC
@pytest.fixture(scope='module', params=[VOC_L, VOC_M], ids=['vwl_l', 'vwl_m'])
def voc_runs(request, vwl_proj, tmp_path_factory):
    """4 iterations with validation; and the same run killed after the
    iteration-2 checkpoint and resumed (no validation)."""
    rel = request.param
    name = osp.basename(rel)[:-3]
    full = str(tmp_path_factory.mktemp(f'{name}_full'))
    _train(vwl_proj, rel, full)
    resumed = str(tmp_path_factory.mktemp(f'{name}_resumed') / 'work')
    killed_after(full, resumed, 'iter_2.pth')
    p = _train(vwl_proj, rel, resumed, resume=True, **NO_VAL)
    return rel, full, resumed, p.stdout + p.stderr


def test_voc_config_trains_validates_and_resumes_exactly(voc_runs, vwl_proj):
    rel, full, resumed, log = voc_runs
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
    expected_losses = {'loss_cls', 'loss_word'} | (
        {'loss_w2i', 'loss_decov'} if rel == VOC_L else set())
    for s, rec in steps_b.items():
        losses = {k: v for k, v in rec.items() if k.startswith('loss')}
        assert set(losses) == expected_losses | {'loss'}, losses
        assert losses == {k: v for k, v in steps_a[s].items()
                          if k.startswith('loss')}, s
    assert all(np.isfinite(r['loss']) for r in steps_a.values())
    a2 = _state_dict(osp.join(full, 'iter_2.pth'))
    if rel == VOC_M:
        # the memory bank: a buffer of the model, moved by every step, resumed
        # bit for bit
        assert BANK in a and a[BANK].shape == (256, 2048)
        assert torch.equal(a[BANK], b[BANK])
        assert not torch.equal(a[BANK], a2[BANK])
        assert 'head.w2i_classifier.weight' not in a
    else:
        assert BANK not in a and a['head.codebook.weight'].shape == (256, 2048)
        assert not torch.equal(a['head.codebook.weight'],
                               a2['head.codebook.weight'])
    # the backbone starts from the stand-in file; the frozen parts and every BN
    # statistic stay as loaded, the rest moves
    # (the torchvision file: a plain state dict, fc included)
    init = torch.load(osp.join(vwl_proj, 'data', 'pretrained', WEIGHTS),
                      map_location='cpu', weights_only=True)
    assert 'fc.weight' in init and 'layer4.2.bn3.running_var' in init
    init = {k: v for k, v in init.items() if not k.startswith('fc.')}
    assert {f'backbone.{k}' for k in init} <= set(a)
    moved = []
    for k, v in init.items():
        same = torch.equal(a[f'backbone.{k}'], v)
        if k.startswith(FROZEN[rel]) or k.endswith(
                ('running_mean', 'running_var', 'num_batches_tracked')):
            assert same, k
        elif not same:
            moved.append(k)
    assert 'layer4.2.conv3.weight' in moved and 'layer3.0.downsample.0.weight' \
        in moved, moved[:10]
    if rel == VOC_M:
        assert 'layer1.0.conv1.weight' in moved


def test_voc_export_seeds_and_pseudo_labels(voc_runs, vwl_proj, tmp_path):
    """The header's export / eval / pseudo-label commands, as written except the
    checkpoint, the output folders, the CAM scales and the worker count."""
    rel, full, _, _ = voc_runs
    cams = str(tmp_path / 'cams')
    args = header_command(rel, 'tools/export_cams.py')[2:]
    assert args[0] == f'configs/{rel}' and args[1].endswith('iter_3966.pth')
    args = _replace_arg([args[0], osp.join(full, 'iter_4.pth')] + args[2:],
                        '--out', cams)
    _tool(vwl_proj, 'export_cams.py', *args, '--cfg-options',
          'model.test_cfg.scales=[1.0]', threads=2)
    with open(osp.join(vwl_proj, VOC, 'ImageSets', 'Segmentation',
                       'train_aug.txt')) as f:
        train_aug = sorted(ln.split()[0] for ln in f if ln.strip())
    assert sorted(n[:-4] for n in os.listdir(cams)) == train_aug
    args = header_command(rel, 'tools/eval_seeds.py')[2:]
    assert args[2:] == ['--split', 'val', '--thresholds', '0.13'], args
    p = _tool(vwl_proj, 'eval_seeds.py', cams, *args[1:], '--no-progress',
              threads=2)
    log = p.stdout + p.stderr
    assert 'mIoU' in log and '0.13' in log, log[-2000:]
    args = header_command(rel, 'tools/make_pseudo_labels.py')[2:]
    out = str(tmp_path / 'labels')
    args = _replace_arg(_replace_arg(args, '--out', out), '--workers', '1')
    args[1] = cams
    summary = str(tmp_path / 'summary.json')
    p = _tool(vwl_proj, 'make_pseudo_labels.py', *args, '--json', summary,
              '--allow-all-ignored', '--no-progress', threads=2)
    log = p.stdout + p.stderr
    assert 'ThresholdBackground' in log, log[-2000:]
    assert 'mIoU' in log, log[-2000:]
    pngs = sorted(os.listdir(out))
    assert [n[:-4] for n in pngs] == train_aug
    for png in pngs:
        with Image.open(osp.join(out, png)) as im:
            values = set(np.unique(np.array(im)).tolist())
        assert values <= set(range(21)) | {255}, values


# ------------------------------------------------------------------ 2 processes
BANK_DUMP_HOOK = '''
import json
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmwsss.registry import HOOKS
from mmwsss.utils.model_wrappers import unwrap_model


@HOOKS.register_module()
class VWLBankDumpHook(Hook):
    """Each rank saves its memory bank before training and after every
    training iteration, and lists the image ids of its batches."""

    def _save(self, runner, it):
        bank = unwrap_model(runner.model).head.codebook.codebook
        torch.save(bank.detach().cpu().clone(), osp.join(
            runner.work_dir, f'bank_iter{it}_rank{get_rank()}.pt'))

    def before_train(self, runner):
        self._save(runner, 0)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        ids = [ds.metainfo['img_id'] for ds in data_batch['data_samples']]
        with open(osp.join(runner.work_dir, f'ids_rank{get_rank()}.jsonl'),
                  'a') as f:
            f.write(json.dumps([batch_idx + 1, ids]) + '\\n')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self._save(runner, batch_idx + 1)
'''


def test_two_processes_hold_the_bank_of_the_global_batch(vwl_proj, tmp_path,
                                                          monkeypatch):
    """VWL-M with tools/dist_train.sh, 2 gloo processes x 2 images, against 1
    process x 4 images, 2 steps. Both draw the same global batch per step: the
    sampler's seed is fixed (``train_dataloader.sampler.seed=0``; DefaultSampler
    gives rank r the permutation's items r, r + 2, ..., so the 2 ranks' first
    batches are the 1-process batch's 4 images) and the random resize / flip /
    crop, whose draws depend on the rank, are replaced by a fixed resize to
    128 x 128. Everything else is the shipped config (the shipped lr).

    * The two ranks hold bit-identical banks after every step (the sums and
      counts are all-reduced before Eqs. 6-7), and rank 0's is the checkpoint's.
    * After the first step the bank equals the 1-process bank up to float
      rounding (after the second, a pixel near a tie of two words may change
      its word with weights that differ in the last bits): the per-word sums
      add the same pixel features in another order (and the features of a batch
      of 2 may differ from those of a batch of 4 in the last bits). The tolerance,
      1e-3 of the step's change of the bank (Eq. 7: rho (C' - C)), is far above
      that rounding and far below what a rank that updated with its own 2 images
      only would be off by (the order of the step itself).
    * The weights after the first step agree up to rounding too (DDP averages
      the gradients: the mean over 2 x 2 images = the mean over 4): the head's
      to 1e-3 of their step of iteration 2, the backbone's moved parameters
      together to 1 % of their first update (L2 over all of them). Not per tensor: the gradients of the BN scales and shifts of the
      zero-initialised residual branches are sums over the pixels with heavy
      cancellation, whose rounding reaches several % of their own small steps.
      A rank with its own gradient would be off by the order of the update.
      The frozen parameters and BN statistics stay bit-identical.
    """
    hook_dir = tmp_path / 'hooks'
    hook_dir.mkdir()
    (hook_dir / 'vwl_bank_dump.py').write_text(BANK_DUMP_HOOK)
    monkeypatch.setenv('PYTHONPATH', str(hook_dir) + os.pathsep +
                       os.environ.get('PYTHONPATH', ''))
    cfg = tmp_path / 'vwl_m_ddp.py'
    cfg.write_text(f"""_base_ = [{_cfg(VOC_M)!r}]
custom_imports = dict(imports=['vwl_bank_dump'], allow_failed_imports=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({CROP}, {CROP}), keep_ratio=False),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(
    num_workers=0,
    sampler=dict(seed=0),
    dataset=dict(pipeline=train_pipeline))
model = dict(data_preprocessor=dict(size=({CROP}, {CROP})))
train_cfg = dict(max_iters=2)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, save_optimizer=False))
custom_hooks = [dict(type='ReseedHook'), dict(type='VWLBankDumpHook')]
""")
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    _tool(vwl_proj, 'train.py', str(cfg), '--work-dir', one, '--cfg-options',
          f'train_dataloader.batch_size={2 * BATCH}', threads=2, timeout=1200)
    p = _dist(vwl_proj, 'dist_train.sh', str(cfg), '--work-dir', two,
              '--cfg-options', f'train_dataloader.batch_size={BATCH}',
              timeout=1200)
    log = p.stdout + p.stderr
    assert 'world_size: 2' in log or 'Distributed launcher: pytorch' in log
    steps = _steps(one)
    assert sorted(steps) == [1, 2] and all(np.isfinite(r['loss'])
                                           for r in steps.values()), steps

    def bank(work, it, rank=0):
        return torch.load(osp.join(work, f'bank_iter{it}_rank{rank}.pt'),
                          weights_only=True)

    def ids(work, rank=0):
        with open(osp.join(work, f'ids_rank{rank}.jsonl')) as f:
            return dict(json.loads(ln) for ln in f)

    # the same global batches: the 1-process batch = the union of the ranks'
    one_ids, rank_ids = ids(one), [ids(two, r) for r in (0, 1)]
    assert sorted(one_ids) == [1, 2]
    for it, batch in one_ids.items():
        assert len(batch) == 2 * BATCH
        assert sorted(batch) == sorted(rank_ids[0][it] + rank_ids[1][it]), it
    # the same initial bank (the seeded random init), on both ranks
    assert torch.equal(bank(one, 0), bank(two, 0, 0))
    assert torch.equal(bank(two, 0, 0), bank(two, 0, 1))
    for it in (1, 2):
        b0, b1 = bank(two, it, 0), bank(two, it, 1)
        assert torch.equal(b0, b1), f'ranks differ after step {it}'
        ckpt = _state_dict(osp.join(two, f'iter_{it}.pth'))
        assert torch.equal(ckpt[BANK], b0)
        ref = bank(one, it)
        assert torch.equal(_state_dict(osp.join(one, f'iter_{it}.pth'))[BANK],
                           ref)
        step = (ref - bank(one, it - 1)).abs().max().item()
        assert step > 0
    # the 1-process bank, after the first step (both runs start from the same
    # weights). Not after the second: the features then come from weights that
    # differ in the last bits, and a pixel whose two best words are that close
    # changes its word (the argmax of Eq. 4), which moves a word's mean by far
    # more than rounding (seen once: 0.0116 against a step of 0.0089)
    ref, b0 = bank(one, 1), bank(two, 1, 0)
    step = (ref - bank(one, 0)).abs().max().item()
    diff = (b0 - ref).abs().max().item()
    assert diff <= 1e-3 * step, (diff, step)
    # the weights after the first step (the second step's word labels may differ
    # for the same reason); the head's to 1e-3 of its step, measured by the
    # 1-process run's second step
    init = {f'backbone.{k}': v for k, v in torch.load(
        osp.join(vwl_proj, 'data', 'pretrained', WEIGHTS), map_location='cpu',
        weights_only=True).items()}
    a1, b1 = (_state_dict(osp.join(w, 'iter_1.pth')) for w in (one, two))
    a2 = _state_dict(osp.join(one, 'iter_2.pth'))
    assert a1.keys() == b1.keys()
    num = den = 0.0
    moved = 0
    for k in a1:
        if k == BANK:
            continue
        if not a1[k].is_floating_point():
            assert torch.equal(a1[k], b1[k]), k
            continue
        if k.startswith('head.'):
            step = (a2[k] - a1[k]).norm().item()
            assert step > 0, k
            assert (a1[k] - b1[k]).norm().item() <= 1e-3 * step, k
            continue
        if torch.equal(a1[k], init[k]):  # frozen: the stem, BN statistics
            assert torch.equal(b1[k], init[k]), k
            continue
        moved += 1
        num += (a1[k] - b1[k]).pow(2).sum().item()
        den += (a1[k] - init[k]).pow(2).sum().item()
    assert moved > 100, moved
    assert num**0.5 <= 1e-2 * den**0.5, (num**0.5, den**0.5)


# ------------------------------------------------------------------------ COCO
@pytest.mark.parametrize('rel', [COCO_L, COCO_M], ids=['vwl_l', 'vwl_m'])
def test_coco_config_trains_validates_and_resumes(rel, vwl_proj,
                                                  coco_format_root, tmp_path):
    state = coco_resume_run(vwl_proj, coco_format_root['root'],
                            str(tmp_path / 'work'),
                            functools.partial(_train, vwl_proj, rel))
    assert state['head.classifier.weight'].shape[0] == 80
    assert (BANK in state) == (rel == COCO_M)


def test_vwl_configs_are_listed():
    assert sorted(VWL_CONFIGS) == sorted([VOC_L, VOC_M, COCO_L, COCO_M])
