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


def test_largefov_trains_on_pseudo_labels_and_tests_with_crf(
        pseudo, toy_root, python_exe):
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
    log = p.stdout + p.stderr
    losses = [float(x) for x in re.findall(r'decode\.loss_ce: ([0-9.]+)', log)]
    assert len(losses) >= 5, log[-2000:]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    ckpt = osp.join(work, 'iter_60.pth')
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
