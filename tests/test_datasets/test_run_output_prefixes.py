"""CAM / attention-target folders as ``data_prefix`` keys (``cam_path``,
``attention_path``): where a relative value resolves, what each item carries, the
start-up check and the transforms that read them."""
import os
import os.path as osp

import numpy as np
import pytest

from mmwsss.registry import DATASETS
from mmwsss.utils.cam_io import cam_path, save_cam

IDS = [f'toy_train_{i:05d}' for i in range(16)]


def build(root, data_prefix=None, pipeline=(), **kw):
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    prefix = dict(img_path='JPEGImages', seg_map_path='SegmentationClass')
    prefix.update(data_prefix or {})
    cfg = dict(type='ToyWSSSDataset', data_root=root,
               ann_file='ImageSets/Segmentation/train.txt', data_prefix=prefix,
               pipeline=list(pipeline))
    cfg.update(kw)
    return DATASETS.build(cfg)


def write_maps(folder, ids=IDS, size=(128, 128), num_classes=8):
    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    for i in ids:
        save_cam(cam_path(folder, i), (xx / (size[1] - 1))[None], [0],
                 num_classes=num_classes)
    return folder


ATT_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=1.0),
    dict(type='LoadAttentionTargets', num_classes=8),
    dict(type='PackWSSSInputs'),
]


@pytest.mark.parametrize('key', ['cam_path', 'attention_path'])
def test_relative_folder_is_relative_to_the_working_directory(
        toy_root, tmp_path, monkeypatch, key):
    """A relative run-output folder resolves against the working directory (as
    ``work_dir`` and ``--out``), not against ``data_root``; the dataset's own keys
    still join ``data_root``; an absolute value is kept."""
    cwd = tmp_path / 'project'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    ds = build(toy_root, {key: 'work_dirs/run/oaa_maps'})
    assert ds.data_prefix[key] == 'work_dirs/run/oaa_maps'
    assert ds.data_prefix['img_path'] == osp.join(toy_root, 'JPEGImages')
    info = ds.get_data_info(0)
    assert info[key] == osp.join('work_dirs', 'run', 'oaa_maps', IDS[0] + '.npz')
    # what a transform opens is the file under the working directory
    assert osp.abspath(info[key]) == osp.join(str(cwd), 'work_dirs', 'run',
                                              'oaa_maps', IDS[0] + '.npz')
    ds = build(toy_root, {key: str(tmp_path / 'abs')})
    assert ds.get_data_info(0)[key] == cam_path(str(tmp_path / 'abs'), IDS[0])


def test_no_data_root_keeps_values(toy_root, monkeypatch):
    monkeypatch.chdir(toy_root)
    ds = build(None, dict(attention_path='maps'),
               ann_file='ImageSets/Segmentation/train.txt')
    assert ds.get_data_info(0)['attention_path'] == cam_path('maps', IDS[0])


def test_attention_targets_read_from_the_item(toy_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_maps(str(tmp_path / 'work_dirs' / 'oaa' / 'oaa_maps'))
    ds = build(toy_root, dict(attention_path='work_dirs/oaa/oaa_maps'),
               pipeline=ATT_PIPELINE)
    att = ds[0]['data_samples'].gt_attention.data
    assert att.shape == (8, 128, 128)
    # the horizontal ramp, flipped with the image; other classes empty
    ramp = np.linspace(0, 1, 128, dtype=np.float32)[::-1]
    np.testing.assert_allclose(att[0, 5].numpy(), ramp, atol=2e-3)
    assert not att[1:].any()


def test_missing_folder_error_names_key_and_tool(toy_root, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        build(toy_root, dict(attention_path='work_dirs/nope/oaa_maps'),
              pipeline=ATT_PIPELINE)
    msg = str(e.value)
    assert "'work_dirs/nope/oaa_maps'" in msg
    assert 'data_prefix.attention_path' in msg
    assert f'relative to the working directory {str(tmp_path)!r}' in msg
    assert 'OAAHook' in msg and 'tools/export_oaa_maps.py' in msg
    assert 'attention_targets=DIR' in msg
    with pytest.raises(FileNotFoundError) as e:
        build(toy_root, dict(cam_path=str(tmp_path / 'cams')),
              pipeline=[dict(type='LoadCAMFromFile')])
    msg = str(e.value)
    assert str(tmp_path / 'cams') in msg and 'data_prefix.cam_path' in msg
    assert 'tools/export_cams.py' in msg and 'working directory' not in msg


@pytest.mark.parametrize('key,transform', [
    ('attention_path', 'LoadAttentionTargets'), ('cam_path', 'LoadCAMFromFile')])
def test_missing_files_error_names_ids(toy_root, tmp_path, key, transform):
    folder = write_maps(str(tmp_path / 'maps'), IDS[:-2])
    with pytest.raises(FileNotFoundError) as e:
        build(toy_root, {key: folder}, pipeline=[dict(type=transform)])
    msg = str(e.value)
    assert '2 id(s)' in msg and IDS[-1] in msg and IDS[-2] in msg
    assert folder in msg and f'data_prefix.{key}' in msg
    # check_files=False: found when the file is read
    ds = build(toy_root, {key: folder}, pipeline=[dict(type=transform)],
               check_files=False)
    assert len(ds) == 16


def test_not_checked_when_no_transform_reads_them(toy_root, tmp_path):
    """CAM export (cam_pipeline) and the offline tools (empty pipeline) do not
    need the training targets; nor a transform given its own ``cam_dir``."""
    missing = str(tmp_path / 'not_there')
    for pipeline in ([], [dict(type='LoadImageFromFile')],
                     [dict(type='LoadAttentionTargets', cam_dir=missing)]):
        ds = build(toy_root, dict(attention_path=missing, cam_path=missing),
                   pipeline=pipeline)
        assert ds.get_data_info(0)['attention_path'] == cam_path(missing, IDS[0])
    # a reading transform nested in a wrapper is found
    with pytest.raises(FileNotFoundError, match='data_prefix.cam_path'):
        build(toy_root, dict(cam_path=missing), pipeline=[
            dict(type='RandomApply', prob=1.0,
                 transforms=[dict(type='LoadCAMFromFile')])])


def test_cam_dir_override_and_missing_key(tmp_path):
    from mmwsss.datasets.transforms import (LoadAttentionTargets,
                                            LoadCAMFromFile)
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    write_maps(a, ['x'], size=(4, 5), num_classes=3)
    save_cam(cam_path(b, 'x'), np.full((2, 4, 5), 0.5), [1, 2], num_classes=3)
    res = dict(img_id='x', cam_path=cam_path(a, 'x'),
               attention_path=cam_path(a, 'x'), ori_shape=(4, 5))
    assert list(LoadCAMFromFile()(dict(res))['cam_record'].labels) == [0]
    assert list(LoadCAMFromFile(cam_dir=b)(dict(res))['cam_record'].labels) == [
        1, 2]
    out = LoadAttentionTargets()(dict(res))['gt_attention']
    assert out[0].any() and not out[1:].any()
    out = LoadAttentionTargets(b)(dict(res))['gt_attention']
    assert not out[0].any() and np.allclose(out[1:], 0.5, atol=1e-3)
    for t, key in ((LoadCAMFromFile(), 'cam_path'),
                   (LoadAttentionTargets(), 'attention_path')):
        with pytest.raises(KeyError) as e:
            t(dict(img_id='x', ori_shape=(4, 5)))
        msg = str(e.value)
        assert f'data_prefix.{key}' in msg and 'cam_dir' in msg and "'x'" in msg
    assert LoadAttentionTargets().reads_data_prefix == 'attention_path'
    assert LoadAttentionTargets(cam_dir=a).reads_data_prefix is None
    assert LoadCAMFromFile().reads_data_prefix == 'cam_path'


def test_prefix_validation(toy_root):
    with pytest.raises(TypeError, match='data_prefix.cam_path'):
        build(toy_root, dict(cam_path=3))
    with pytest.raises(ValueError, match='attention_path'):
        build(toy_root, dict(attention_pth='x'))  # the message lists the keys
    # None disables a key
    ds = build(toy_root, dict(cam_path=None))
    assert 'cam_path' not in ds.get_data_info(0)


def test_coco_accepts_the_keys():
    from mmwsss.datasets import COCOWSSSDataset
    assert {'cam_path', 'attention_path'} <= set(
        COCOWSSSDataset.OPTIONAL_PREFIXES)
    assert COCOWSSSDataset.WORK_DIR_PREFIXES == ('cam_path', 'attention_path')
