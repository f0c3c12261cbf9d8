"""tools/make_pseudo_labels.py stops on labels that cannot be right (all ignore, no
foreground, no labelled GT pixel) unless --allow-all-ignored; --eval never prints
nan."""
import json
import os
import os.path as osp
import runpy

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, run_env
from tests.test_tools.test_pseudo_label_tool import _run_inprocess

CONFIG = osp.join(REPO, 'configs', 'toy', 'cam_r18_toy.py')
TOOL = osp.join('tools', 'make_pseudo_labels.py')
K = 8
N_TRAIN = 16
PREFIX = 'make_pseudo_labels.py: error: '


@pytest.fixture(scope='module')
def inputs(toy_root, tmp_path_factory):
    """All-zero CAMs and GT-like CAMs for the toy train split."""
    import cv2

    from mmwsss.utils.cam_io import cam_path, save_cam
    from mmwsss.utils.io import read_label_png, read_split_ids
    base = tmp_path_factory.mktemp('pl_degenerate')
    ids = read_split_ids(
        osp.join(toy_root, 'ImageSets', 'Segmentation', 'train.txt'))
    cls = np.load(osp.join(toy_root, 'cls_labels.npy'),
                  allow_pickle=True).item()
    zero, good = str(base / 'zero_cams'), str(base / 'good_cams')
    for i in ids:
        labels = np.nonzero(cls[i])[0]
        gt = read_label_png(osp.join(toy_root, 'SegmentationClass',
                                     i + '.png'))
        maps = []
        for c in labels:
            m = cv2.GaussianBlur((gt == c + 1).astype(np.float32), (0, 0), 1.5)
            maps.append(m / max(float(m.max()), 1e-6))
        save_cam(cam_path(good, i), np.stack(maps), labels, num_classes=K)
        save_cam(cam_path(zero, i), np.zeros_like(np.stack(maps)), labels,
                 num_classes=K)
    return dict(root=toy_root, base=base, ids=ids, zero=zero, good=good,
                saliency=osp.join(toy_root, 'SaliencyMaps'))


def _args(inputs, cam_dir, out, *extra):
    return [TOOL, CONFIG, cam_dir, '--out', out, '--no-progress'] + \
        list(extra) + ['--cfg-options',
                       f"train_dataloader.dataset.data_root={inputs['root']}"]


def _run(args):
    """``python TOOL ARGS`` in this process (one worker)."""
    return _run_inprocess(['python'] + list(args))


def _error(p):
    assert p.returncode != 0, p.stdout[-2000:]
    assert 'Traceback' not in p.stderr, p.stderr[-3000:]
    line = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert line.startswith(PREFIX), line
    return line


def _labels(folder):
    names = sorted(f for f in os.listdir(folder) if not f.startswith('.'))
    arrays = []
    for n in names:
        with Image.open(osp.join(folder, n)) as img:
            img.verify()
        with Image.open(osp.join(folder, n)) as img:
            arrays.append(np.asarray(img))
    return names, arrays


def _common(line, out):
    assert repr(out) in line
    for cause in ('empty CAMs', 'threshold too high', 'saliency',
                  '--allow-all-ignored', '--overwrite'):
        assert cause in line, (cause, line)


def test_all_ignored_stops_and_keeps_labels(inputs):
    """OAA saliency rule on all-zero CAMs: foreground below min_fg_ratio in
    every image, so every label is all 255. --eval: n/a, never nan."""
    out = str(inputs['base'] / 'all_ignored')
    js = str(inputs['base'] / 'all_ignored.json')
    args = _args(inputs, inputs['zero'], out, '--rule', 'SaliencyBackground',
                 '--saliency-dir', inputs['saliency'], '--eval', '--json', js)
    p = _run(args)
    line = _error(p)
    _common(line, out)
    assert 'every pixel of all 16 pseudo label(s)' in line
    assert 'ignore (255)' in line and 'SaliencyBackground' in line
    assert inputs['zero'] in line
    assert 'nan' not in p.stdout.lower(), p.stdout
    assert 'pseudo-label mIoU n/a (no labelled pixel)' in p.stdout
    assert not osp.exists(js)
    # the labels written stay, complete
    names, arrays = _labels(out)
    assert len(names) == N_TRAIN and all((a == 255).all() for a in arrays)
    # a re-run that skips the existing labels stops the same way
    p2 = _run(args)
    assert 'kept 16 existing' in p2.stdout
    assert 'every pixel of all 16' in _error(p2)
    # accepted with the flag: exit 0, a warning, the JSON records it
    p3 = _run(args + ['--allow-all-ignored'])
    assert p3.returncode == 0, p3.stderr[-3000:]
    warn = [ln for ln in p3.stdout.splitlines() if ln.startswith('WARNING: ')]
    assert len(warn) == 1 and '--allow-all-ignored' in warn[0]
    s = json.load(open(js))
    assert s['mIoU'] is None and 'every pixel' in s['warning']


def test_no_foreground_stops(inputs):
    """Constant background threshold on all-zero CAMs: all background."""
    out = str(inputs['base'] / 'no_fg')
    args = _args(inputs, inputs['zero'], out, '--rule', 'ThresholdBackground')
    line = _error(_run(args))
    _common(line, out)
    assert 'no pixel of the 16 pseudo label(s)' in line
    assert 'foreground class' in line
    names, arrays = _labels(out)
    assert len(names) == N_TRAIN and all((a == 0).all() for a in arrays)
    p = _run(args + ['--allow-all-ignored'])
    assert p.returncode == 0, p.stderr[-3000:]
    assert 'WARNING: no pixel of the 16' in p.stdout


def test_threshold_too_high_stops(inputs):
    """Good CAMs, but a background score above every CAM value."""
    out = str(inputs['base'] / 'high')
    line = _error(_run(_args(inputs, inputs['good'], out, '--rule',
                             'ThresholdBackground', '--rule-options',
                             'threshold=1.5')))
    assert "'threshold': 1.5" in line and 'foreground class' in line


def test_good_cams_pass(inputs):
    out = str(inputs['base'] / 'good')
    p = _run(_args(inputs, inputs['good'], out, '--rule',
                   'ThresholdBackground', '--eval'))
    assert p.returncode == 0, p.stderr[-3000:]
    assert 'WARNING' not in p.stdout and 'nan' not in p.stdout.lower()
    assert 'wrote 16 pseudo labels' in p.stdout


def test_eval_no_labelled_gt_pixel_rule():
    """Labels only on GT-ignored pixels: labelled, foreground, but no GT pixel
    is labelled; the message says so and the scores read n/a."""
    from mmwsss.pseudo.job import (degenerate_labels_message,
                                   pseudo_label_scores)
    names = ['background', 'a', 'b']
    scores = pseudo_label_scores(np.zeros((3, 3), np.int64), 10, 10, names)
    summary = dict(num_images=2, written=2, skipped=0, labelled_pixels=5,
                   foreground_pixels=5, all_ignored=False,
                   no_foreground=False, scores=scores)
    msg = degenerate_labels_message(summary, 'OUT', dict(type='X'), 'CAMS')
    assert 'label no pixel that has a GT label' in msg and "'OUT'" in msg
    assert "{'type': 'X'}" in msg and "'CAMS'" in msg
    summary['scores'] = pseudo_label_scores(np.eye(3, dtype=np.int64), 0, 3,
                                            names)
    assert degenerate_labels_message(summary, 'OUT') is None
    assert degenerate_labels_message(dict(num_images=0), 'OUT') is None
    # the tool's table: n/a, never nan
    spec_globals = runpy.run_path(osp.join(REPO, TOOL), run_name='not_main')
    text = spec_globals['format_scores'](scores)
    assert 'nan' not in text.lower()
    assert 'pseudo-label mIoU n/a (no labelled pixel)' in text
