"""OAA end to end with the standard tools: resume exactness, DDP identity, OAA++ and
the IAM on exported maps (docs/methods/oaa.md, sections 'The OAA hook', 'Attention
drop' and 'Integral attention model')."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import REPO, run_env
from tests.test_tools.test_train_tools import _free_port, _ok, _run

TOY_OAA = osp.join(REPO, 'configs', 'toy', 'oaa_r18_toy.py')


def _write_cfg(tmp_path, name, toy_root, body=''):
    path = tmp_path / name
    path.write_text(f"""_base_ = [{TOY_OAA!r}]
data_root = {toy_root!r}
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
{body}
""")
    return str(path)


def _state(ckpt_path):
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    return ckpt['oaa_state']


def _assert_same_state(a, b):
    for store in ('cumulative', ):
        for key in ('ids', 'classes', 'counts', 'shapes', 'data'):
            np.testing.assert_array_equal(np.asarray(a[store][key]), np.asarray(b[store][key]),
                                          err_msg=f'{store}.{key}')
    np.testing.assert_array_equal(a['image_ids'], b['image_ids'])
    np.testing.assert_array_equal(a['ori_shapes'], b['ori_shapes'])


@pytest.fixture(scope='module')
def uninterrupted(toy_root, tmp_path_factory, python_exe):
    """4 epochs of OAA on the 16-image toy set (random flips in a loader worker)."""
    tmp = tmp_path_factory.mktemp('oaa_full')
    cfg = _write_cfg(
        tmp, 'cfg.py', toy_root, """
train_dataloader.update(batch_size=4, num_workers=1, persistent_workers=False)
val_cfg = None
val_dataloader = None
val_evaluator = None
train_cfg = dict(max_epochs=4, val_interval=100)
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, by_epoch=True,
                        begin=0, end=4)]
custom_hooks = [dict(type='WSSSNumClassCheckHook'),
                dict(type='OAAHook', start_epoch=0, export_dir='oaa_maps')]
""")
    work = str(tmp / 'work')
    p = _ok(_run([python_exe, 'tools/train.py', cfg, '--work-dir', work]))
    return dict(cfg=cfg, work=work, log=p.stdout + p.stderr)


def test_state_saved_in_every_checkpoint_and_exported(uninterrupted, toy_root):
    work = uninterrupted['work']
    for e in range(1, 5):
        st = _state(osp.join(work, f'epoch_{e}.pth'))
        assert len(st['image_ids']) == 16
    st = _state(osp.join(work, 'epoch_4.pth'))
    # the last-epoch fallback gives every (image, GT class) pair a map
    labels = np.load(osp.join(toy_root, 'cls_labels.npy'),
                     allow_pickle=True).item()
    expected = sum(int(np.asarray(labels[i]).sum()) for i in st['image_ids'])
    assert len(st['cumulative']['ids']) == expected
    maps = os.listdir(osp.join(work, 'oaa_maps'))
    assert len(maps) == 16
    assert 'OAA epoch 4: accepted' in uninterrupted['log']


def test_resume_gives_the_same_maps(uninterrupted, tmp_path, python_exe):
    """An interrupted run (stopped after epoch 2) resumed with --resume ends with
    the same cumulative maps as the uninterrupted run."""
    work = str(tmp_path / 'resumed')
    os.makedirs(work)
    shutil.copy(osp.join(uninterrupted['work'], 'epoch_2.pth'), work)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_2.pth'))
    p = _ok(_run([python_exe, 'tools/train.py', uninterrupted['cfg'],
                  '--work-dir', work, '--resume']))
    assert 'OAAHook: restored' in p.stdout + p.stderr
    _assert_same_state(_state(osp.join(work, 'epoch_4.pth')),
                       _state(osp.join(uninterrupted['work'], 'epoch_4.pth')))


def test_two_process_ddp_equals_one_process(toy_root, tmp_path, python_exe):
    """lr = 0: a 2-process gloo run and a 1-process run produce identical maps."""
    cfg = _write_cfg(
        tmp_path, 'cfg.py', toy_root, """
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackWSSSInputs')]
train_dataloader = dict(batch_size=1, dataset=dict(data_root=data_root,
                                                pipeline=train_pipeline))
train_cfg = dict(max_epochs=2, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
optim_wrapper = dict(optimizer=dict(lr=0.0))
param_scheduler = []
custom_hooks = [dict(type='OAAHook', start_epoch=0, export_dir='oaa_maps')]
""")
    one = str(tmp_path / 'one')
    _ok(_run([python_exe, 'tools/train.py', cfg, '--work-dir', one]))
    env = run_env()
    env['PYTHON'] = python_exe
    env['PORT'] = str(_free_port())
    two = str(tmp_path / 'two')
    p = _ok(_run(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', two],
                 env=env))
    assert 'world_size: 2' in p.stdout + p.stderr or \
        'Distributed launcher: pytorch' in p.stdout + p.stderr
    a, b = _state(osp.join(one, 'epoch_2.pth')), _state(
        osp.join(two, 'epoch_2.pth'))
    assert len(a['cumulative']['ids']) > 0
    _assert_same_state(a, b)
    # both ranks exported their halves: the union is the full set, identical
    files = sorted(os.listdir(osp.join(one, 'oaa_maps')))
    assert sorted(os.listdir(osp.join(two, 'oaa_maps'))) == files
    from mmwsss.utils.cam_io import load_cam
    for f in files[:4]:
        x = load_cam(osp.join(one, 'oaa_maps', f))
        y = load_cam(osp.join(two, 'oaa_maps', f))
        np.testing.assert_array_equal(x.cams, y.cams)


def test_oaa_drop_and_iam_on_exported_maps(uninterrupted, toy_root, tmp_path,
                                           python_exe):
    """OAA++ erases inputs during training; the IAM trains on the exported OAA maps
    (hybrid loss decreases) and its maps export to the CAM format."""
    drop_cfg = _write_cfg(
        tmp_path, 'drop.py', toy_root, """
model = dict(data_preprocessor=dict(batch_augments=[
    dict(type='AttentionDrop', drop_prob=1.0, threshold=0.3)]))
train_dataloader.update(batch_size=4)
train_cfg = dict(max_epochs=3, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
custom_hooks = [dict(type='OAAHook', start_epoch=0, export_dir=None)]
""")
    p = _ok(_run([python_exe, 'tools/train.py', drop_cfg, '--work-dir',
                  str(tmp_path / 'drop')]))
    log = p.stdout + p.stderr
    # epoch 1 has no previous maps; later epochs erase the attended regions
    assert 'OAA epoch 1: accepted' in log and 'images with attention drop' in log
    import re
    dropped = [int(n) for n in re.findall(r'(\d+) images with attention drop',
                                          log)]
    assert dropped[0] == 0 and max(dropped[1:]) > 0, dropped

    targets = osp.join(uninterrupted['work'], 'oaa_maps')
    iam_cfg = tmp_path / 'iam.py'
    iam_cfg.write_text(f"""_base_ = [{osp.join(REPO, 'configs', 'toy',
                                           'iam_r18_toy.py')!r}]
data_root = {toy_root!r}
attention_targets = {targets!r}
train_dataloader = dict(batch_size=4,
                        dataset=dict(data_root=data_root,
                                     data_prefix=dict(attention_path=attention_targets)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
train_cfg = dict(max_epochs=8, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
param_scheduler = []
default_hooks = dict(checkpoint=dict(interval=8), logger=dict(interval=4))
""")
    work = str(tmp_path / 'iam')
    p = _ok(_run([python_exe, 'tools/train.py', str(iam_cfg), '--work-dir',
                  work]))
    losses = [float(x) for x in re.findall(r'loss_hybrid: ([0-9.]+)',
                                           p.stdout + p.stderr)]
    assert len(losses) >= 4 and np.mean(losses[-2:]) < np.mean(losses[:2]), \
        losses
    p = _ok(_run([python_exe, 'tools/export_cams.py', str(iam_cfg),
                  osp.join(work, 'epoch_8.pth'), '--out',
                  osp.join(work, 'cams'), '--cfg-options',
                  f'test_dataloader.dataset.data_root={toy_root}']))
    from mmwsss.utils.cam_io import load_cam
    files = os.listdir(osp.join(work, 'cams'))
    assert len(files) == 16
    rec = load_cam(osp.join(work, 'cams', files[0]))
    assert rec.cams.shape[1:] == (128, 128) and rec.num_classes == 8
