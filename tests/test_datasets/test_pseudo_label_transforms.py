"""LoadCAMFromFile + CAMToPseudoLabel: pseudo labels built on the fly in an mmcv
pipeline must equal the offline ones (tools/make_pseudo_labels.py) of the same id."""
import copy
import os.path as osp

import numpy as np
import pytest

from tests.conftest import REPO

CONFIG = osp.join(REPO, 'configs', 'toy', 'cam_r18_toy.py')
NUM_CLASSES = 8
IDX = 1  # toy_train_00001: two listed classes

RULES = {
    'threshold': dict(type='ThresholdBackground', threshold=0.15),
    'threshold_psa': dict(type='ThresholdBackground', crf='psa',
                          crf_unary='one_minus_max'),
    'confident': dict(type='ConfidentRegions'),
    'saliency': dict(type='SaliencyBackground'),
    'edam': dict(type='EDAMSaliency'),
}


def _gt_cams(gt, labels, seed):
    """Plausible CAMs from the GT mask: blurred class masks + noise, max 1."""
    import cv2
    rng = np.random.default_rng(seed)
    cams = []
    for c in labels:
        m = cv2.GaussianBlur((gt == c + 1).astype(np.float32), (0, 0), 1.5)
        m = np.clip(m + rng.normal(0, 0.03, m.shape).astype(np.float32), 0,
                    None)
        cams.append(m / max(float(m.max()), 1e-6))
    return np.stack(cams).astype(np.float32)


@pytest.fixture(scope='module')
def toy_ds(toy_root):
    from mmwsss.utils.launch import build_split_dataset
    return build_split_dataset(
        CONFIG, 'train', {'train_dataloader.dataset.data_root': toy_root})


@pytest.fixture(scope='module')
def cam_dir(toy_ds, tmp_path_factory):
    from mmwsss.utils.cam_io import cam_path, save_cam
    from mmwsss.utils.io import read_label_png
    out = str(tmp_path_factory.mktemp('tf_cams'))
    for i in range(len(toy_ds)):
        info = toy_ds.get_data_info(i)
        gt = read_label_png(info['seg_map_path'])
        labels = np.nonzero(info['gt_label'])[0]
        save_cam(cam_path(out, info['img_id']), _gt_cams(gt, labels, i),
                 labels, num_classes=NUM_CLASSES)
    return out


def _compose(*cfgs):
    from mmcv.transforms import Compose

    from mmwsss.registry import TRANSFORMS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return Compose([TRANSFORMS.build(dict(c)) for c in cfgs])


def _pipeline(cam_dir, rule, geom=(), saliency=None, num_classes=NUM_CLASSES):
    from mmwsss.pseudo import build_pseudo_label_rule
    if saliency is None:
        saliency = build_pseudo_label_rule(rule).requires_saliency
    cfgs = [dict(type='LoadImageFromFile'),
            dict(type='LoadCAMFromFile', cam_dir=cam_dir,
                 num_classes=num_classes)]
    if saliency:
        cfgs.append(dict(type='LoadSaliencyMap'))
    cfgs.append(dict(type='CAMToPseudoLabel', rule=rule))
    cfgs.extend(geom)
    return _compose(*cfgs)


def _offline(toy_ds, cam_dir, rule_cfg, idx, tmp_path):
    """The label of the offline job (the tool's code path) and of the rule called
    directly on the RGB image / raw saliency map."""
    from mmwsss.pseudo import build_pseudo_label_rule
    from mmwsss.pseudo.job import (collect_tasks, read_rgb, read_saliency,
                                   run_pseudo_label_job)
    from mmwsss.utils.cam_io import cam_path, load_cam
    from mmwsss.utils.io import read_label_png
    rule = build_pseudo_label_rule(rule_cfg)
    tasks = collect_tasks(
        toy_ds, cam_dir, str(tmp_path / 'offline'),
        need_image=rule.requires_image, need_saliency=rule.requires_saliency)
    task = tasks[idx]
    summary = run_pseudo_label_job([task], rule_cfg, NUM_CLASSES,
                                   progress=False)
    assert summary['written'] == 1
    job_label = read_label_png(task.out_path)
    info = toy_ds.get_data_info(idx)
    rec = load_cam(cam_path(cam_dir, info['img_id']))
    image = read_rgb(info['img_path']) if rule.requires_image else None
    sal = (read_saliency(info['saliency_path'])
           if rule.requires_saliency else None)
    direct = rule(rec, image=image, saliency=sal)
    np.testing.assert_array_equal(job_label, direct)
    return direct


@pytest.mark.parametrize('name', sorted(RULES))
def test_on_the_fly_equals_offline(name, toy_ds, cam_dir, tmp_path):
    rule_cfg = RULES[name]
    info = toy_ds.get_data_info(IDX)
    res = _pipeline(cam_dir, rule_cfg)(copy.deepcopy(info))
    expected = _offline(toy_ds, cam_dir, rule_cfg, IDX, tmp_path)
    seg = res['gt_seg_map']
    assert seg.dtype == np.uint8 and seg.shape == res['img'].shape[:2]
    np.testing.assert_array_equal(seg, expected)
    assert 'gt_seg_map' in res['seg_fields']
    assert res['seg_fields'].count('gt_seg_map') == 1
    assert res['reduce_zero_label'] is False
    assert 'cam_record' not in res
    listed = {0, 255} | {int(c) + 1 for c in np.nonzero(info['gt_label'])[0]}
    assert set(np.unique(seg).tolist()) <= listed
    assert len(set(np.unique(seg).tolist()) - {0, 255}) >= 1


@pytest.mark.parametrize('name', ['threshold_psa', 'saliency'])
@pytest.mark.parametrize('direction', ['horizontal', 'vertical'])
def test_flip_after_pseudo_label(name, direction, toy_ds, cam_dir):
    rule_cfg = RULES[name]
    info = toy_ds.get_data_info(IDX)
    plain = _pipeline(cam_dir, rule_cfg)(copy.deepcopy(info))
    flipped = _pipeline(
        cam_dir, rule_cfg,
        geom=[dict(type='RandomFlip', prob=1.0,
                   direction=direction)])(copy.deepcopy(info))
    axis = 1 if direction == 'horizontal' else 0
    assert flipped['flip'] is True
    assert flipped['flip_direction'] == direction
    np.testing.assert_array_equal(flipped['img'], np.flip(plain['img'], axis))
    np.testing.assert_array_equal(flipped['gt_seg_map'],
                                  np.flip(plain['gt_seg_map'], axis))
    # the label is not symmetric, so the flip is really checked
    assert not np.array_equal(plain['gt_seg_map'],
                              np.flip(plain['gt_seg_map'], axis))
    if 'gt_saliency' in plain:
        np.testing.assert_array_equal(flipped['gt_saliency'],
                                      np.flip(plain['gt_saliency'], axis))


def test_missing_cam_file_names_id(toy_ds, tmp_path):
    info = toy_ds.get_data_info(IDX)
    empty = str(tmp_path / 'no_cams')
    with pytest.raises(FileNotFoundError) as e:
        _pipeline(empty, RULES['threshold'])(copy.deepcopy(info))
    assert info['img_id'] in str(e.value)
    assert 'no_cams' in str(e.value)


def test_after_resize_with_crf_rule_raises(toy_ds, cam_dir):
    info = toy_ds.get_data_info(IDX)
    pipe = _compose(
        dict(type='LoadImageFromFile'),
        dict(type='LoadCAMFromFile', cam_dir=cam_dir),
        dict(type='Resize', scale=(64, 64), keep_ratio=False),
        dict(type='CAMToPseudoLabel', rule=RULES['threshold_psa']))
    with pytest.raises(ValueError, match='before') as e:
        pipe(copy.deepcopy(info))
    msg = str(e.value)
    assert info['img_id'] in msg and 'CAMToPseudoLabel' in msg
    assert '(64, 64)' in msg and '(128, 128)' in msg


def test_after_resize_without_crf_raises(toy_ds, cam_dir):
    info = toy_ds.get_data_info(IDX)
    pipe = _compose(
        dict(type='LoadImageFromFile'),
        dict(type='LoadCAMFromFile', cam_dir=cam_dir),
        dict(type='Resize', scale=(64, 64), keep_ratio=False),
        dict(type='CAMToPseudoLabel', rule=RULES['threshold']))
    with pytest.raises(ValueError, match='before'):
        pipe(copy.deepcopy(info))


def test_saliency_rule_without_loader_raises(toy_ds, cam_dir):
    info = toy_ds.get_data_info(IDX)
    pipe = _pipeline(cam_dir, RULES['saliency'], saliency=False)
    with pytest.raises(KeyError, match='LoadSaliencyMap') as e:
        pipe(copy.deepcopy(info))
    assert info['img_id'] in str(e.value)


def test_num_classes_mismatch_raises(toy_ds, cam_dir):
    info = toy_ds.get_data_info(IDX)
    pipe = _pipeline(cam_dir, RULES['threshold'], num_classes=20)
    with pytest.raises(ValueError, match='num_classes') as e:
        pipe(copy.deepcopy(info))
    assert info['img_id'] in str(e.value)
    assert '20' in str(e.value) and '8' in str(e.value)


def test_without_load_cam_raises(toy_ds):
    info = toy_ds.get_data_info(IDX)
    pipe = _compose(dict(type='LoadImageFromFile'),
                    dict(type='CAMToPseudoLabel', rule=RULES['threshold']))
    with pytest.raises(KeyError, match='LoadCAMFromFile'):
        pipe(copy.deepcopy(info))
