"""Integration: train the toy CAM classifier briefly, export its CAMs with the standard
tools, and check its seeds beat the trivial seed (every pixel = the image's labels)."""
import json
import os
import os.path as osp
import subprocess

import pytest

from tests.conftest import REPO, run_env

CONFIG = osp.join(REPO, 'configs', 'toy', 'cam_r18_toy.py')


def _run(args):
    p = subprocess.run(args, cwd=REPO, env=run_env(), capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


@pytest.fixture(scope='module')
def toy64(tmp_path_factory):
    from mmwsss.datasets import make_toy_dataset
    root = str(tmp_path_factory.mktemp('toy64') / 'toy')
    make_toy_dataset(root, seed=1, num_train=64, num_val=8)
    return root


def _eval(py, cam_dir, root, out):
    _run([py, 'tools/eval_seeds.py', cam_dir, CONFIG, '--split', 'train',
          '--out', out, '--no-progress', '--cfg-options',
          f'train_dataloader.dataset.data_root={root}'])
    with open(out) as f:
        return json.load(f)


def test_trained_cam_beats_trivial_seed(toy64, tmp_path, python_exe):
    work = str(tmp_path / 'work')
    data = [f'{k}.dataset.data_root={toy64}' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    _run([python_exe, 'tools/train.py', CONFIG, '--work-dir', work,
          '--cfg-options', 'train_cfg.max_epochs=60',
          'param_scheduler.0.end=60', 'train_cfg.val_interval=1000',
          'default_hooks.checkpoint.interval=60'] + data)
    ckpt = osp.join(work, 'epoch_60.pth')
    assert osp.isfile(ckpt)
    cams = str(tmp_path / 'cams')
    p = _run([python_exe, 'tools/export_cams.py', CONFIG, ckpt, '--out', cams,
              '--cfg-options'] + data)
    assert len(os.listdir(cams)) == 64
    # a second export skips everything
    p = _run([python_exe, 'tools/export_cams.py', CONFIG, ckpt, '--out', cams,
              '--cfg-options'] + data)
    assert 'already exist' in p.stdout
    # a re-run repairs: a damaged CAM file is computed again, the temporary file of
    # a killed export (dead pid) goes, one of a live export stays
    from mmwsss.utils.cam_io import load_cam
    names = sorted(os.listdir(cams))
    damaged = osp.join(cams, names[7])
    good = open(damaged, 'rb').read()
    open(damaged, 'wb').write(good[:len(good) // 2])
    gone = subprocess.Popen(['true'])
    gone.wait()
    live = subprocess.Popen(['sleep', '60'])
    try:
        dead_tmp = osp.join(cams, f'.{names[3]}.{gone.pid}-abc.tmp')
        live_tmp = osp.join(cams, f'.{names[4]}.{live.pid}-abc.tmp')
        for t in (dead_tmp, live_tmp):
            open(t, 'wb').write(b'partial')
        p = _run([python_exe, 'tools/export_cams.py', CONFIG, ckpt, '--out', cams,
                  '--cfg-options'] + data)
        assert '1 damaged CAM file(s)' in p.stdout and names[7][:-4] in p.stdout
        assert 'removed 1 temporary file(s)' in p.stdout
        assert not osp.exists(dead_tmp) and osp.exists(live_tmp)
    finally:
        live.kill()
        live.wait()
    os.remove(live_tmp)
    assert load_cam(damaged).cams.shape[0] >= 1
    assert sorted(os.listdir(cams)) == names
    trivial = str(tmp_path / 'trivial')
    _run([python_exe, 'tools/misc/make_trivial_cams.py', CONFIG, '--out',
          trivial, '--data-root', toy64])
    cam_res = _eval(python_exe, cams, toy64, str(tmp_path / 'cam.json'))
    triv_res = _eval(python_exe, trivial, toy64, str(tmp_path / 'triv.json'))
    assert cam_res['mIoU'] > triv_res['mIoU'] + 5, (cam_res['mIoU'],
                                                     triv_res['mIoU'])


def test_voc_config_builds_and_runs():
    """configs/cam/cam_vgg16_voc.py builds (without its ImageNet file) and runs."""
    import torch
    from mmengine.config import Config

    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, 'configs/cam/cam_vgg16_voc.py'))
    assert cfg.optim_wrapper.optimizer.weight_decay == 2e-4
    assert cfg.optim_wrapper.accumulative_counts == 5
    assert cfg.model.backbone.init_cfg.checkpoint.endswith('vgg16-397923af.pth')
    model = MODELS.build(cfg.model)  # weights are only read by init_weights()
    assert model(torch.rand(1, 3, 64, 80), mode='tensor').shape == (1, 20, 8, 10)


def test_dist_export_two_processes(toy_root, tmp_path, python_exe):
    """CAM export with 2 CPU processes writes every id once."""
    import socket

    import torch
    from mmengine.config import Config

    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'random.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = run_env()
    env.update(PYTHON=python_exe, PORT=str(port))
    out = str(tmp_path / 'cams')
    p = subprocess.run(
        ['bash', 'tools/dist_export_cams.sh', CONFIG, ckpt, '2', '--out', out,
         '--cfg-options', f'train_dataloader.dataset.data_root={toy_root}'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    assert sorted(os.listdir(out)) == sorted(
        f'toy_train_{i:05d}.npz' for i in range(16))
    assert '16 CAM files written' in p.stdout + p.stderr
