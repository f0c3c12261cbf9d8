"""Stage [3] -> [4] with the standard tools on the toy data: pseudo labels from CAM
files, DeepLab-LargeFOV trained on them (the loss goes down), tested with and without
the dense CRF post-processing."""
import os
import os.path as osp
import re

import numpy as np
import pytest

from tests.conftest import REPO
from tests.test_tools.test_train_tools import _ok, _run

CFG = osp.join(REPO, 'configs', 'toy', 'largefov_r18_toy_pseudo.py')


@pytest.fixture(scope='module')
def pseudo(toy_root, tmp_path_factory, python_exe):
    tmp = tmp_path_factory.mktemp('seg')
    cams, labels = str(tmp / 'cams'), str(tmp / 'labels')
    # CAM-like seeds from the GT masks: blurred, weakened class masks
    import cv2

    from mmwsss.utils.cam_io import cam_path, save_cam
    from mmwsss.utils.io import read_label_png, read_split_ids
    for img_id in read_split_ids(
            osp.join(toy_root, 'ImageSets', 'Segmentation', 'train.txt')):
        gt = read_label_png(
            osp.join(toy_root, 'SegmentationClass', img_id + '.png'))
        classes = [c for c in np.unique(gt) if 0 < c < 255]
        maps = []
        for c in classes:
            m = cv2.GaussianBlur((gt == c).astype(np.float32), (0, 0), 6)
            maps.append(m / max(m.max(), 1e-6))
        save_cam(cam_path(cams, img_id),
                 np.stack(maps) if maps else np.zeros((0, ) + gt.shape),
                 [int(c) - 1 for c in classes], num_classes=8)
    _ok(_run([python_exe, 'tools/make_pseudo_labels.py',
              osp.join(REPO, 'configs', 'toy', 'cam_r18_toy.py'), cams, '--out',
              labels, '--rule', 'SaliencyBackground', '--no-progress',
              '--cfg-options', f'train_dataloader.dataset.data_root={toy_root}']))
    return dict(tmp=tmp, labels=labels)


@pytest.fixture(scope='module')
def trained(pseudo, toy_root, python_exe):
    """LargeFOV trained 60 iterations on the pseudo labels (standard train tool)."""
    work = str(pseudo['tmp'] / 'work')
    opts = [
        '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_root}',
        f"train_dataloader.dataset.data_prefix.pseudo_label_path={pseudo['labels']}",
        f'val_dataloader.dataset.data_root={toy_root}',
        f'test_dataloader.dataset.data_root={toy_root}',
        'train_dataloader.batch_size=4', 'train_cfg.max_iters=60',
        'train_cfg.val_interval=1000', 'param_scheduler.0.end=60',
        'default_hooks.checkpoint.interval=60',
        'default_hooks.logger.interval=10',
    ]
    p = _ok(_run([python_exe, 'tools/train.py', CFG, '--work-dir', work] + opts))
    return dict(work=work, log=p.stdout + p.stderr,
                ckpt=osp.join(work, 'iter_60.pth'))


def test_largefov_trains_on_pseudo_labels_and_tests_with_crf(
        trained, toy_root, python_exe):
    log, work, ckpt = trained['log'], trained['work'], trained['ckpt']
    losses = [float(x) for x in re.findall(r'decode\.loss_ce: ([0-9.]+)', log)]
    assert len(losses) >= 5, log[-2000:]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    assert osp.isfile(ckpt)
    test_opts = ['--cfg-options', f'test_dataloader.dataset.data_root={toy_root}']
    plain = _ok(_run([python_exe, 'tools/test.py', CFG, ckpt, '--work-dir',
                      work] + test_opts))
    crf = _ok(_run([python_exe, 'tools/test.py', CFG, ckpt, '--work-dir', work] +
                   test_opts + ['model.test_cfg.crf=deeplab_vgg']))
    miou = [
        float(re.findall(r'mIoU: ([0-9.]+)', q.stdout + q.stderr)[-1])
        for q in (plain, crf)
    ]
    assert all(0 <= m <= 100 for m in miou)
    assert miou[0] != miou[1]  # the CRF changed the predictions


def test_tta_with_crf_single_and_two_processes_agree(
        trained, toy_root, python_exe, tmp_path):
    """`tools/test.py --tta` (multi-scale + flip + one CRF) and the same with
    `tools/dist_test.sh ... 2` (gloo) give the same metrics, written by
    --metrics-out after the process group is gone."""
    import json
    import socket

    from tests.conftest import run_env
    ckpt = trained['ckpt']
    opts = ['--cfg-options', f'test_dataloader.dataset.data_root={toy_root}']
    out1, out2 = str(tmp_path / 'one.json'), str(tmp_path / 'two.json')
    _ok(_run([python_exe, 'tools/test.py', CFG, ckpt, '--tta', '--work-dir',
              str(tmp_path / 'w1'), '--metrics-out', out1] + opts))
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = run_env()
    env.update(PYTHON=python_exe, PORT=str(port))
    import subprocess
    p = subprocess.run(
        ['bash', 'tools/dist_test.sh', CFG, ckpt, '2', '--tta', '--work-dir',
         str(tmp_path / 'w2'), '--metrics-out', out2] + opts,
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    with open(out1) as f:
        one = json.load(f)
    with open(out2) as f:
        two = json.load(f)
    assert one == two and 0 <= one['mIoU'] <= 100
    # nothing else (no temporary file) next to the metrics files
    assert sorted(os.listdir(tmp_path)) == ['one.json', 'two.json', 'w1', 'w2']


def test_pseudo_label_folder_is_one_config_key(pseudo, toy_root):
    from mmengine.config import Config

    from mmwsss.utils.launch import build_split_dataset
    ds = build_split_dataset(CFG, 'train', {
        'train_dataloader.dataset.data_root': toy_root,
        'train_dataloader.dataset.data_prefix.pseudo_label_path':
        pseudo['labels'],
    })
    info = ds.get_data_info(0)
    assert info['seg_map_path'].startswith(pseudo['labels'])
    assert info['gt_seg_map_path'].startswith(toy_root)
    assert len(os.listdir(pseudo['labels'])) == len(ds)
    cfg = Config.fromfile(CFG)
    assert cfg.train_dataloader.dataset.data_prefix.pseudo_label_path == \
        'PseudoLabels/cam'
