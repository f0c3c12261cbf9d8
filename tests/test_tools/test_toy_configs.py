"""The toy configs that no other test or the demo runs: OAA++ (trained, resumed from
its first checkpoint), OAA+++ on its maps, the one-run OAA ablation, GAIN and GAIN_ext-p
(trained, resumed from its first checkpoint) -- as shipped, on the toy data, with
``--cfg-options`` only for the schedule and ``data_root``
(``tests/test_tools/test_voc_configs.py`` checks that every toy config is run by a
test)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, no_network_env


def _train(cfg, work, data_root, epochs, *extra, resume=False):
    args = [sys.executable, osp.join(REPO, 'tools', 'train.py'),
            osp.join(REPO, 'configs', 'toy', cfg), '--work-dir', work]
    if resume:
        args.append('--resume')
    args += ['--cfg-options', f'data_root={data_root}',
             f'train_cfg.max_epochs={epochs}', 'default_hooks.checkpoint.interval=1',
             *extra]
    p = subprocess.run(args, cwd=REPO, env=no_network_env(2), capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


def kill_after_first_epoch(work):
    """Leave the work dir as a run killed during epoch 2 leaves it: only the first
    checkpoint (``last_checkpoint`` points at it), no exported maps."""
    import shutil
    os.remove(osp.join(work, 'epoch_2.pth'))
    shutil.rmtree(osp.join(work, 'oaa_maps'), ignore_errors=True)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_1.pth'))


@pytest.fixture(scope='module')
def oaa_drop(toy_root, tmp_path_factory):
    """OAA++ for 2 epochs, killed after the first one, resumed from it."""
    work = str(tmp_path_factory.mktemp('oaa_drop_toy'))
    _train('oaa_drop_r18_toy.py', work, toy_root, 2)
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu',
                      weights_only=True)
    # start_epoch=1: no map accumulated in the first epoch (empty arrays)
    assert ckpt['oaa_state']['cumulative']['ids'].size == 0
    kill_after_first_epoch(work)
    p = _train('oaa_drop_r18_toy.py', work, toy_root, 2, resume=True)
    assert 'epoch_1.pth' in p.stdout + p.stderr
    return work


def test_oaa_drop_toy(oaa_drop, toy_root):
    maps = osp.join(oaa_drop, 'oaa_maps')
    with open(osp.join(toy_root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        ids = sorted(ln.strip() for ln in f if ln.strip())
    assert sorted(n[:-4] for n in os.listdir(maps)) == ids


def test_iam_drop_toy(oaa_drop, toy_root, tmp_path):
    work = str(tmp_path / 'iam')
    maps = osp.join(oaa_drop, 'oaa_maps')
    p = _train('iam_drop_r18_toy.py', work, toy_root, 1, f'attention_targets={maps}')
    assert 'attention_targets' in p.stdout + p.stderr
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


def test_oaa_ablation_toy(toy_root, tmp_path):
    work = str(tmp_path / 'ablation')
    _train('oaa_ablation_r18_toy.py', work, toy_root, 2)
    # every hook exported to its own folder; only start_epoch=1 accumulated
    assert len(os.listdir(osp.join(work, 'oaa_start1'))) > 0


def _train_log(p, epoch):
    """The logged losses of the training iterations of ``epoch``."""
    lines = re.findall(rf'Epoch\(train\)\s+\[{epoch}\]\[\d+/\d+\].*',
                       p.stdout + p.stderr)
    assert lines, (p.stdout + p.stderr)[-3000:]
    return [dict((k, float(v)) for k, v in
                 re.findall(r'(loss\w*|am_mask_mean): ([-\d.e]+)', ln))
            for ln in lines]


# the GAIN schedule's warm-up of L_am (10 of 40 epochs) in iterations, shortened to
# one iteration: the toy test set is one batch per epoch, so L_am is on in epoch 2
GAIN_SCHEDULE = ('model.head.am_start_iter=1', )


def test_gain_toy(toy_root, tmp_path):
    """GAIN (configs/toy/gain_r18_toy.py): L_cl only in the warm-up, then L_am; the
    losses are finite, the attention mask is neither empty nor the whole image."""
    work = str(tmp_path / 'gain')
    p = _train('gain_r18_toy.py', work, toy_root, 2, *GAIN_SCHEDULE)
    (first, ), (second, ) = _train_log(p, 1), _train_log(p, 2)
    assert first['loss_am'] == 0 and 'loss_ext_pixel' not in first
    assert 0 < second['loss_am'] < 1  # a sigmoid score
    assert 0 < second['am_mask_mean'] < 1
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))


def test_gain_ext_p_toy(toy_root, tmp_path):
    """GAIN_ext-p (configs/toy/gain_ext-p_r18_toy.py) fine-tunes a trained toy CAM
    classifier (load_from: GAINHead takes the plain head's weights) with L_cl, L_am
    and L_e from the first iteration; the generator's 10 % pixel subset (2 of the 16
    test images), 2 of them in the batch (StrongMixSampler); killed after epoch 1
    and resumed (its own checkpoint, not load_from). Without the CAM checkpoint the
    run stops before building anything, naming load_from and the fix."""
    cam = str(tmp_path / 'cam')
    _train('cam_r18_toy.py', cam, toy_root, 1)
    ckpt = osp.join(cam, 'epoch_1.pth')
    work = str(tmp_path / 'gain_ext-p')
    p = _train('gain_ext-p_r18_toy.py', work, toy_root, 2, f'load_from={ckpt}')
    out = p.stdout + p.stderr
    assert f'Load checkpoint from {ckpt}' in out
    assert 'missing keys' not in out and 'unexpected key' not in out
    (first, ) = _train_log(p, 1)
    assert 0 < first['loss_am'] < 1  # a sigmoid score
    assert 0 < first['loss_ext_pixel'] < 10  # omega x a mean squared error
    assert sum(v for k, v in first.items() if k.startswith('loss_')) == \
        pytest.approx(first['loss'], abs=1e-3)
    # the fine-tuned classifier starts from the CAM weights
    cam_w = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    kill_after_first_epoch(work)
    p = _train('gain_ext-p_r18_toy.py', work, toy_root, 2, f'load_from={ckpt}',
               resume=True)
    out = p.stdout + p.stderr
    assert 'resuming' in out and 'epoch_1.pth' in out and 'ignoring load_from' in out
    (second, ) = _train_log(p, 2)
    assert 0 < second['loss_ext_pixel'] < 10
    gain_w = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu',
                        weights_only=True)['state_dict']
    assert set(gain_w) == {k.replace('head.', 'head.cls_head.', 1)
                           for k in cam_w}
    # as shipped, with no CAM run at the default path
    p = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'),
         osp.join(REPO, 'configs', 'toy', 'gain_ext-p_r18_toy.py'), '--work-dir',
         str(tmp_path / 'no_cam'), '--cfg-options', f'data_root={toy_root}',
         'load_from=' + str(tmp_path / 'nowhere' / 'epoch_40.pth')],
        cwd=REPO, env=no_network_env(2), capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert 'nowhere/epoch_40.pth' in p.stderr and 'load_from' in p.stderr
    assert 'Train the run it names first' in p.stderr


def _tool(script, *args):
    p = subprocess.run([sys.executable, osp.join(REPO, 'tools', script), *args],
                       cwd=REPO, env=no_network_env(2), capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


def test_edam_toy(toy_root, tmp_path):
    """EDAM (configs/toy/edam_r18_toy.py): pairs that share a class
    (ClassGroupSampler) through the EDAM head; killed after epoch 1 and resumed, it
    ends with the weights of the uninterrupted run (ReseedHook: the CMA's dropout);
    its DA masks are exported, evaluated and turned into pseudo labels with the
    config's EDAMSaliency rule. A head whose group size differs from the sampler's
    is refused, naming both keys."""
    full = str(tmp_path / 'full')
    p = _train('edam_r18_toy.py', full, toy_root, 2)
    (first, ) = _train_log(p, 1)
    assert 0 < first['loss_cls'] < 2
    work = str(tmp_path / 'edam')
    _train('edam_r18_toy.py', work, toy_root, 2)
    kill_after_first_epoch(work)
    p = _train('edam_r18_toy.py', work, toy_root, 2, resume=True)
    assert 'resum' in p.stdout + p.stderr
    a = torch.load(osp.join(full, 'epoch_2.pth'), map_location='cpu',
                   weights_only=True)['state_dict']
    b = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu',
                   weights_only=True)['state_dict']
    assert set(a) == set(b) and any(k.startswith('head.cma.') for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    cfg = osp.join(REPO, 'configs', 'toy', 'edam_r18_toy.py')
    cams = str(tmp_path / 'cams')
    opts = ['--cfg-options', f'data_root={toy_root}']
    _tool('export_cams.py', cfg, osp.join(work, 'epoch_2.pth'), '--out', cams,
          *opts)
    assert len(os.listdir(cams)) >= 16
    p = _tool('eval_seeds.py', cams, cfg, *opts)
    assert 'mIoU' in p.stdout + p.stderr
    out = str(tmp_path / 'pseudo')
    p = _tool('make_pseudo_labels.py', cfg, cams, '--out', out, '--eval', *opts)
    assert 'EDAMSaliency' in p.stdout + p.stderr
    assert len([f for f in os.listdir(out) if f.endswith('.png')]) == 16
    # the head's group size must be the sampler's
    args = [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg,
            '--work-dir', str(tmp_path / 'mismatch'), '--cfg-options',
            f'data_root={toy_root}', 'model.head.group_size=4']
    p = subprocess.run(args, cwd=REPO, env=no_network_env(2), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode != 0
    assert 'train_dataloader.sampler.group_size' in p.stderr
    assert 'model.head.group_size' in p.stderr
