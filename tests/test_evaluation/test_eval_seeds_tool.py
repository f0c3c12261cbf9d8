"""tools/eval_seeds.py and mmwsss.evaluation.seed_eval on the toy dataset."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmwsss.utils.cam_io import cam_path, save_cam
from mmwsss.utils.io import read_label_png, read_split_ids
from tests.conftest import REPO, run_env

CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets', 'toy.py')
TOOL = osp.join(REPO, 'tools', 'eval_seeds.py')
K = 8  # toy foreground classes


def _ids(root, split='train'):
    return read_split_ids(
        osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt'))


def _write_cams(root, cam_dir, kind='blur', split='train', skip=(),
                num_classes=K, crop=0):
    """One CAM file per id: blurred GT masks of the present classes ('blur') or
    all-ones maps of the present classes ('ones')."""
    for img_id in _ids(root, split):
        if img_id in skip:
            continue
        gt = read_label_png(osp.join(root, 'SegmentationClass', img_id + '.png'))
        labels = [c for c in range(K) if (gt == c + 1).any()]
        maps = []
        for c in labels:
            if kind == 'ones':
                m = np.ones(gt.shape, np.float32)
            else:
                m = cv2.GaussianBlur((gt == c + 1).astype(np.float32), (0, 0), 3)
                m /= m.max()
            maps.append(m)
        cams = np.stack(maps) if maps else np.zeros((0, ) + gt.shape, np.float32)
        if crop:
            cams = cams[:, crop:]
        save_cam(cam_path(cam_dir, img_id), cams, labels, num_classes)


@pytest.fixture(scope='module')
def blur_cams(toy_root, tmp_path_factory):
    d = str(tmp_path_factory.mktemp('cams') / 'blur')
    _write_cams(toy_root, d)
    return d


def _toy_dataset(root, split='train', seg=True):
    from mmwsss.datasets import ToyWSSSDataset
    prefix = dict(img_path='JPEGImages')
    if seg:
        prefix['seg_map_path'] = 'SegmentationClass'
    return ToyWSSSDataset(
        data_root=root,
        ann_file=f'ImageSets/Segmentation/{split}.txt',
        data_prefix=prefix,
        pipeline=[])


def _tool(args):
    return subprocess.run([sys.executable, TOOL] + args, cwd=REPO,
                          env=run_env(), capture_output=True, text=True,
                          timeout=300)


def _opts(root):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}']


def test_tool_end_to_end(toy_root, blur_cams, tmp_path):
    out = str(tmp_path / 'res' / 'seeds.json')
    p = _tool([blur_cams, CONFIG, '--out', out, '--no-progress'] +
              _opts(toy_root))
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.load(open(out))
    assert res['num_images'] == len(_ids(toy_root)) and res['split'] == 'train'
    assert res['mIoU'] > 80, res
    assert set(res['mIoU_per_threshold']) == {
        f'{0.05 * i:.2f}' for i in range(1, 20)
    }
    assert res['mIoU'] == pytest.approx(
        max(v for v in res['mIoU_per_threshold'].values()))
    assert res['class_names'][0] == 'background'
    assert set(res['per_class']) == {'iou', 'precision', 'recall'}
    assert f"{res['best_threshold']:g}" in p.stdout
    assert 'Precision' in p.stdout and 'seed mIoU' in p.stdout
    assert [f for f in os.listdir(osp.dirname(out))] == ['seeds.json']


def test_tool_missing_ids(toy_root, tmp_path):
    cam_dir = str(tmp_path / 'cams')
    ids = _ids(toy_root)
    _write_cams(toy_root, cam_dir, skip=set(ids[:3]))
    p = _tool([cam_dir, CONFIG, '--no-progress'] + _opts(toy_root))
    assert p.returncode != 0
    assert '3 of 16 id(s)' in p.stderr and ids[0] in p.stderr, p.stderr
    assert 'Traceback' not in p.stderr


def test_evaluate_matches_direct_and_trivial_is_worse(toy_root, blur_cams,
                                                      tmp_path):
    from mmwsss.evaluation.metrics import (confusions_from_histogram,
                                           seed_scores, sweep_histogram)
    from mmwsss.evaluation.seed_eval import evaluate_cam_dir
    from mmwsss.utils.cam_io import load_cam
    ds = _toy_dataset(toy_root)
    good = evaluate_cam_dir(blur_cams, ds, progress=False)
    # the same computation by hand
    hist = sum(
        sweep_histogram(
            load_cam(cam_path(blur_cams, i)).dense(),
            read_label_png(osp.join(toy_root, 'SegmentationClass', i + '.png')),
            None, K) for i in _ids(toy_root))
    ref = seed_scores(confusions_from_histogram(hist), good['thresholds'])
    np.testing.assert_allclose(good['miou'], ref['miou'])
    ones_dir = str(tmp_path / 'ones')
    _write_cams(toy_root, ones_dir, kind='ones')
    trivial = evaluate_cam_dir(ones_dir, ds, progress=False)
    assert good['best_miou'] > 0.8
    assert trivial['best_miou'] < good['best_miou'] - 0.2
    # all-ones maps: every pixel is foreground at every threshold
    np.testing.assert_allclose(trivial['miou'], trivial['miou'][0])


def _load_tool():
    spec = importlib.util.spec_from_file_location('eval_seeds_tool', TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tool_errors_in_process(toy_root, blur_cams, tmp_path, capsys):
    tool = _load_tool()
    opts = [f'train_dataloader.dataset.data_root={toy_root}',
            f'val_dataloader.dataset.data_root={toy_root}']
    # CAM folder missing
    with pytest.raises(FileNotFoundError, match='CAM folder .* does not exist'):
        tool.main([str(tmp_path / 'nope'), CONFIG, '--cfg-options'] + opts)
    # CAMs of another split: the val ids are missing
    with pytest.raises(FileNotFoundError,
                       match=r"8 of 8 id\(s\) of the split .*val.*--split"):
        tool.main([blur_cams, CONFIG, '--split', 'val', '--cfg-options'] + opts)
    # num_classes mismatch
    bad_k = str(tmp_path / 'bad_k')
    _write_cams(toy_root, bad_k, num_classes=20)
    first = _ids(toy_root)[0]
    with pytest.raises(ValueError,
                       match=f"{first}.*num_classes=20.*8 foreground classes"):
        tool.main([bad_k, CONFIG, '--no-progress', '--cfg-options'] + opts)
    # shape mismatch
    bad_shape = str(tmp_path / 'bad_shape')
    _write_cams(toy_root, bad_shape, crop=8)
    with pytest.raises(ValueError,
                       match=rf"{first}.*\(120, 128\).*\(128, 128\).*original "
                       'image size'):
        tool.main([bad_shape, CONFIG, '--no-progress', '--cfg-options'] + opts)
    # custom thresholds and --out through main()
    out = str(tmp_path / 'r.json')
    tool.main([blur_cams, CONFIG, '--thresholds', '0.2', '0.4', '--out', out,
               '--no-progress', '--cfg-options'] + opts)
    assert set(json.load(open(out))['mIoU_per_threshold']) == {'0.20', '0.40'}
    with pytest.raises(ValueError, match='strictly increasing'):
        tool.main([blur_cams, CONFIG, '--thresholds', '0.4', '0.2',
                   '--cfg-options'] + opts)
    capsys.readouterr()


def test_errors_no_gt_and_bad_gt_label(toy_copy, tmp_path):
    from mmwsss.evaluation.seed_eval import evaluate_cam_dir
    cam_dir = str(tmp_path / 'cams')
    _write_cams(toy_copy, cam_dir, split='val')
    with pytest.raises(ValueError, match='no GT masks.*seg_map_path'):
        evaluate_cam_dir(cam_dir, _toy_dataset(toy_copy, 'val', seg=False))
    # a GT label beyond the classes names the id and the mask file
    from mmwsss.utils.io import save_png_atomic, voc_palette
    img_id = _ids(toy_copy, 'val')[2]
    path = osp.join(toy_copy, 'SegmentationClass', img_id + '.png')
    gt = read_label_png(path)
    gt[0, 0] = 12
    save_png_atomic(path, gt, voc_palette())
    with pytest.raises(ValueError, match=f'{img_id}.*GT label 12'):
        evaluate_cam_dir(cam_dir, _toy_dataset(toy_copy, 'val'),
                         progress=False)
