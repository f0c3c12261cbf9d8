"""Seed evaluation warns about degenerate seeds (all-zero CAMs, images without a
seed for any GT class) and keeps the metric values unchanged."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mmwsss.utils.cam_io import cam_path, save_cam
from mmwsss.utils.io import read_label_png, read_split_ids
from tests.conftest import REPO, run_env

CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets', 'toy.py')
TOOL = osp.join(REPO, 'tools', 'eval_seeds.py')
K = 8


def _ids(root):
    return read_split_ids(
        osp.join(root, 'ImageSets', 'Segmentation', 'train.txt'))


def _write_cams(root, cam_dir, zero=lambda img_id: False):
    """Blurred GT masks of the present classes; all-zero maps for ``zero`` ids."""
    for img_id in _ids(root):
        gt = read_label_png(osp.join(root, 'SegmentationClass', img_id + '.png'))
        labels = [c for c in range(K) if (gt == c + 1).any()]
        maps = []
        for c in labels:
            m = cv2.GaussianBlur((gt == c + 1).astype(np.float32), (0, 0), 3)
            maps.append(np.zeros_like(m) if zero(img_id) else m / m.max())
        save_cam(cam_path(cam_dir, img_id), np.stack(maps), labels, K)


@pytest.fixture(scope='module')
def cam_dirs(toy_root, tmp_path_factory):
    base = tmp_path_factory.mktemp('seed_degenerate')
    ids = _ids(toy_root)
    dirs = dict(good=str(base / 'good'), zero=str(base / 'zero'),
                some=str(base / 'some'))
    _write_cams(toy_root, dirs['good'])
    _write_cams(toy_root, dirs['zero'], zero=lambda i: True)
    _write_cams(toy_root, dirs['some'], zero=lambda i: i in ids[3:6])
    return dirs


def _load_tool():
    spec = importlib.util.spec_from_file_location('eval_seeds_tool_deg', TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _opts(root):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}']


def _dataset(root):
    from mmwsss.datasets import ToyWSSSDataset
    return ToyWSSSDataset(
        data_root=root, ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(img_path='JPEGImages',
                         seg_map_path='SegmentationClass'),
        pipeline=[])


def test_all_zero_cams_warn_in_tool_output(toy_root, cam_dirs, tmp_path):
    """A real run of the tool: exit 0, the scores, and a WARNING line naming the
    CAM folder and saying the seeds are empty."""
    out = str(tmp_path / 'r.json')
    p = subprocess.run(
        [sys.executable, TOOL, cam_dirs['zero'], CONFIG, '--no-progress',
         '--out', out] + _opts(toy_root),
        cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith('WARNING: ')]
    assert len(lines) == 1, p.stdout
    assert cam_dirs['zero'] in lines[0]
    assert 'seeds' in lines[0] and 'are empty' in lines[0]
    assert 'wrong checkpoint' in lines[0] and 'wrong CAM folder' in lines[0]
    res = json.load(open(out))
    assert res['warnings'] == [lines[0][len('WARNING: '):]]
    # the values are those of all-background seeds, the same at every threshold
    values = set(res['mIoU_per_threshold'].values())
    assert len(values) == 1 and res['mIoU'] == values.pop()


def test_all_zero_values_unchanged_and_logged(toy_root, cam_dirs, monkeypatch):
    from mmwsss.evaluation import seed_eval
    from mmwsss.evaluation.metrics.seed_sweep import (
        confusions_from_histogram, seed_scores, sweep_histogram)
    logged = []
    monkeypatch.setattr(seed_eval, 'print_log',
                        lambda msg, logger=None, level=None: logged.append(
                            (level, msg)))
    scores = seed_eval.evaluate_cam_dir(cam_dirs['zero'], _dataset(toy_root),
                                        progress=False)
    hist = sum(
        sweep_histogram(np.zeros((K, 128, 128), np.float32),
                        read_label_png(osp.join(toy_root, 'SegmentationClass',
                                                i + '.png')), None, K)
        for i in _ids(toy_root))
    ref = seed_scores(confusions_from_histogram(hist), scores['thresholds'])
    np.testing.assert_array_equal(scores['miou'], ref['miou'])
    assert len(scores['empty_ids']) == len(_ids(toy_root))
    assert [lv for lv, _ in logged] == [30]  # logging.WARNING, one message
    assert logged[0][1] == scores['warnings'][0]


def test_some_images_without_seeds_are_listed(toy_root, cam_dirs, capsys):
    ids = _ids(toy_root)
    tool = _load_tool()
    tool.main([cam_dirs['some'], CONFIG, '--no-progress', '--max-listed', '2']
              + _opts(toy_root))
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith('WARNING: ')]
    assert len(lines) == 1, out
    assert '3 of 16 image(s)' in lines[0] and cam_dirs['some'] in lines[0]
    assert f'{ids[3]}, {ids[4]} ...' in lines[0] and ids[5] not in lines[0]
    assert 'are empty' not in lines[0]


def test_normal_cams_no_warning(toy_root, cam_dirs, capsys, tmp_path):
    tool = _load_tool()
    out = str(tmp_path / 'r.json')
    tool.main([cam_dirs['good'], CONFIG, '--no-progress', '--out', out] +
              _opts(toy_root))
    printed = capsys.readouterr().out
    assert 'WARNING' not in printed and 'seed mIoU' in printed
    res = json.load(open(out))
    assert 'warnings' not in res and res['mIoU'] > 80


def test_seed_iou_metric_warns(monkeypatch):
    from mmwsss.evaluation.metrics import SeedIoUMetric
    from mmwsss.evaluation.metrics import seed_iou_metric as mod
    logged = []
    monkeypatch.setattr(mod, 'print_log',
                        lambda msg, logger=None, level=None: logged.append(
                            (level, msg)))
    classes = ('background', 'a', 'b')
    gt = torch.zeros(1, 8, 8, dtype=torch.long)
    gt[0, 2:6, 2:6] = 1

    def run(cams_of):
        logged.clear()
        metric = SeedIoUMetric()
        metric.dataset_meta = dict(classes=classes)
        for i in range(3):
            metric.process({}, [dict(pred_cams=dict(data=cams_of(i)),
                                     gt_sem_seg=dict(data=gt),
                                     img_id=f'img{i}')])
        res = metric.compute_metrics(metric.results)
        return res, [m for lv, m in logged if lv == 30]

    # all zero: one "empty" warning; every threshold the same mIoU
    res, warns = run(lambda i: torch.zeros(2, 8, 8))
    assert len(warns) == 1 and 'are empty' in warns[0], warns
    assert len({v for k, v in res.items() if k.startswith('mIoU@')}) == 1
    # one image without seed for its class: listed
    good = torch.zeros(2, 8, 8)
    good[0, 2:6, 2:6] = 0.9
    res, warns = run(lambda i: torch.zeros(2, 8, 8) if i == 1 else good)
    assert len(warns) == 1 and '1 of 3' in warns[0] and 'img1' in warns[0]
    # normal: none
    res, warns = run(lambda i: good)
    assert warns == [] and res['mIoU'] == 100.0
