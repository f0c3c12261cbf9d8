import os
import os.path as osp

import numpy as np
import pytest
import torch

from mmwsss.registry import DATASETS
from mmwsss.structures import WSSSDataSample
from mmwsss.utils.io import save_class_labels

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='LoadSaliencyMap'),
    dict(type='RandomFlip', prob=1.0),
    dict(type='PackWSSSInputs'),
]


def build(root, **kw):
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = dict(
        type='ToyWSSSDataset',
        data_root=root,
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(img_path='JPEGImages',
                         seg_map_path='SegmentationClass'))
    cfg.update(kw)
    return DATASETS.build(cfg)


def test_three_label_sources_agree(toy_root):
    dsets = {
        src: build(toy_root, label_source=src)
        for src in ('cls_file', 'mask', 'xml')
    }
    n = len(dsets['cls_file'])
    assert n == 16
    for i in range(n):
        infos = {k: d.get_data_info(i) for k, d in dsets.items()}
        ids = {v['img_id'] for v in infos.values()}
        assert len(ids) == 1
        ref = infos['cls_file']['gt_label']
        assert ref.shape == (8, ) and ref.dtype == np.float32
        assert ref.sum() >= 1
        for k in ('mask', 'xml'):
            np.testing.assert_array_equal(infos[k]['gt_label'], ref, err_msg=k)


def test_item_fields_and_packing(toy_root):
    ds = build(
        toy_root,
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='SegmentationClass',
            saliency_path='SaliencyMaps'),
        pipeline=PIPELINE)
    info = ds.get_data_info(0)
    assert info['img_id'] == 'toy_train_00000'
    assert info['img_path'].endswith('JPEGImages/toy_train_00000.jpg')
    assert info['seg_map_path'] == info['gt_seg_map_path']
    out = ds[0]
    sample = out['data_samples']
    assert isinstance(sample, WSSSDataSample)
    assert sample.metainfo['img_id'] == 'toy_train_00000'
    assert sample.metainfo['flip'] is True
    torch.testing.assert_close(sample.gt_label,
                               torch.from_numpy(info['gt_label']))
    assert out['inputs'].shape == (3, 128, 128)
    sal = sample.gt_saliency.data
    assert sal.shape == (1, 128, 128) and 0 <= sal.min() and sal.max() <= 1
    # gt_label is consistent with the (flipped) mask
    present = set(sample.gt_sem_seg.data.unique().tolist()) - {0, 255}
    assert present == set((torch.nonzero(sample.gt_label)[:, 0] + 1).tolist())


def test_saliency_flipped_with_image(toy_root):
    from PIL import Image
    ds = build(
        toy_root,
        data_prefix=dict(img_path='JPEGImages', saliency_path='SaliencyMaps'),
        pipeline=PIPELINE[:1] + PIPELINE[2:])
    sample = ds[1]['data_samples']
    raw = np.array(Image.open(osp.join(toy_root, 'SaliencyMaps',
                                       'toy_train_00001.png')))
    np.testing.assert_allclose(sample.gt_saliency.data[0].numpy(),
                               raw[:, ::-1] / 255., atol=1e-6)


def test_pseudo_label_redirects_seg_map(toy_root, tmp_path):
    pseudo = tmp_path / 'pseudo'
    pseudo.mkdir()
    ids = [f'toy_train_{i:05d}' for i in range(16)]
    from mmwsss.utils.io import save_png_atomic
    for i in ids:
        save_png_atomic(str(pseudo / (i + '.png')),
                        np.full((128, 128), 3, np.uint8))
    ds = build(
        toy_root,
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='SegmentationClass',
            pseudo_label_path=str(pseudo)),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'),
                  dict(type='PackWSSSInputs')])
    info = ds.get_data_info(0)
    assert info['seg_map_path'] == str(pseudo / 'toy_train_00000.png')
    assert info['gt_seg_map_path'].endswith('SegmentationClass/toy_train_00000.png')
    assert ds[0]['data_samples'].gt_sem_seg.data.unique().tolist() == [3]


def test_split_formats_and_irn_int_keys(toy_copy):
    # psa-style and OAA-style lines
    split = osp.join(toy_copy, 'psa.txt')
    with open(split, 'w') as f:
        f.write('/JPEGImages/toy_train_00000.jpg /SegmentationClass/x.png\n')
        f.write('toy_train_00001 0 3\n\n')
    ds = build(toy_copy, ann_file='psa.txt')
    assert [ds.get_data_info(i)['img_id'] for i in range(2)] == [
        'toy_train_00000', 'toy_train_00001'
    ]
    # irn encodes VOC ids as ints: 2007_000032 -> 2007000032
    from mmwsss.utils.io import load_class_labels
    path = osp.join(toy_copy, 'irn.npy')
    np.save(path, {2007000032: np.eye(8, dtype=np.float32)[2]},
            allow_pickle=True)
    table = load_class_labels(path)
    assert table['2007_000032'][2] == 1


def test_coco_dataset_metainfo(tmp_path):
    from mmwsss.datasets import COCOWSSSDataset
    from mmwsss.utils.io import save_jpg_atomic, save_png_atomic
    root = tmp_path / 'coco'
    save_jpg_atomic(str(root / 'train2014' / 'COCO_train2014_000000000009.jpg'),
                    np.zeros((8, 8, 3), np.uint8))
    m = np.zeros((8, 8), np.uint8)
    m[2:4, 2:4] = 80
    save_png_atomic(
        str(root / 'SegmentationClass/train2014/COCO_train2014_000000000009.png'),
        m)
    (root / 'ImageSets').mkdir()
    (root / 'ImageSets' / 'train.txt').write_text('COCO_train2014_000000000009\n')
    vec = np.zeros(80, np.float32)
    vec[79] = 1
    save_class_labels(str(root / 'cls_labels_coco.npy'),
                      {'COCO_train2014_000000000009': vec})
    ds_file = COCOWSSSDataset(data_root=str(root))
    ds_mask = COCOWSSSDataset(data_root=str(root), label_source='mask')
    assert len(ds_file.metainfo['classes']) == 81
    assert ds_file.metainfo['classes'][80] == 'toothbrush'
    np.testing.assert_array_equal(ds_file.get_data_info(0)['gt_label'], vec)
    np.testing.assert_array_equal(ds_mask.get_data_info(0)['gt_label'], vec)
    with pytest.raises(ValueError, match='label_source'):
        COCOWSSSDataset(data_root=str(root), label_source='xml')


# ----------------------------------------------------------------- bad input
def test_missing_data_root(tmp_path):
    with pytest.raises(FileNotFoundError, match='data_root.*does not exist'):
        build(str(tmp_path / 'nope'))


def test_missing_split_file(toy_root):
    with pytest.raises(FileNotFoundError, match='split file.*missing.txt.*ann_file'):
        build(toy_root, ann_file='ImageSets/Segmentation/missing.txt')


def test_id_without_image(toy_copy):
    os.remove(osp.join(toy_copy, 'JPEGImages', 'toy_train_00003.jpg'))
    with pytest.raises(FileNotFoundError,
                       match=r'1 id\(s\).*no image.*toy_train_00003'):
        build(toy_copy)


def test_id_missing_from_class_label_file(toy_copy):
    path = osp.join(toy_copy, 'cls_labels.npy')
    table = np.load(path, allow_pickle=True).item()
    del table['toy_train_00005']
    save_class_labels(path, table)
    with pytest.raises(KeyError,
                       match='missing from the class-label file.*cls_labels.npy.*toy_train_00005'):
        build(toy_copy)
    # the other sources do not need the file
    assert len(build(toy_copy, label_source='mask')) == 16


def test_class_label_file_wrong_dimension(toy_copy):
    save_class_labels(osp.join(toy_copy, 'cls_labels.npy'),
                      {'toy_train_00000': np.zeros(20, np.float32)})
    with pytest.raises(ValueError, match='20-dim vectors.*8 foreground'):
        build(toy_copy)


def test_mask_label_beyond_num_classes(toy_copy):
    from mmwsss.utils.io import save_png_atomic
    save_png_atomic(osp.join(toy_copy, 'SegmentationClass', 'toy_train_00002.png'),
                    np.full((128, 128), 12, np.uint8))
    with pytest.raises(ValueError, match='toy_train_00002.png.*label 12'):
        build(toy_copy, label_source='mask')


def test_corrupt_image(toy_copy):
    with open(osp.join(toy_copy, 'JPEGImages', 'toy_train_00004.jpg'), 'wb') as f:
        f.write(b'this is not a jpeg')
    ds = build(toy_copy, pipeline=PIPELINE[:2] + PIPELINE[-1:])
    ds[3]  # other images still load
    with pytest.raises(Exception, match='toy_train_00004.*corrupt'):
        ds[4]


def test_unknown_xml_class(toy_copy):
    p = osp.join(toy_copy, 'Annotations', 'toy_train_00001.xml')
    s = open(p).read()
    import re
    s = re.sub(r'<name>\w+</name>', '<name>unicorn</name>', s, count=1)
    open(p, 'w').write(s)
    with pytest.raises(ValueError, match="toy_train_00001.xml.*'unicorn'"):
        build(toy_copy, label_source='xml')


def test_transform_error_names_the_transform_not_the_file(toy_root):
    """An error in a transform after the files were read names the transform and
    does not blame the file (it used to say "if the file is corrupt, re-extract")."""
    from mmcv.transforms import BaseTransform

    from mmwsss.registry import TRANSFORMS

    @TRANSFORMS.register_module(force=True)
    class _FailingTransformForTest(BaseTransform):

        def transform(self, results):
            raise OverflowError('Python integer -22 out of bounds for uint8')

    ds = build(toy_root, pipeline=PIPELINE[:2] + [
        dict(type='_FailingTransformForTest')] + PIPELINE[-1:])
    with pytest.raises(OverflowError) as info:
        ds[0]
    msg = str(info.value)
    assert 'toy_train_00000' in msg and '_FailingTransformForTest' in msg
    assert 'out of bounds' in msg and 'corrupt' not in msg


def test_label_less_images_are_reported(toy_copy, monkeypatch):
    """An image without any foreground class is said at load time, with what happens
    to it (trained as a negative, CAM file without maps, background seeds)."""
    import mmengine.logging

    from mmwsss.utils.io import save_png_atomic
    said = []
    monkeypatch.setattr(mmengine.logging, 'print_log',
                        lambda msg, **kw: said.append(msg))
    save_png_atomic(osp.join(toy_copy, 'SegmentationClass', 'toy_train_00003.png'),
                    np.zeros((128, 128), np.uint8))
    ds = build(toy_copy, label_source='mask')
    assert not ds.get_data_info(3)['gt_label'].any()
    msg = '\n'.join(said)
    assert "1 image(s) of" in msg and 'toy_train_00003' in msg
    assert 'no foreground class' in msg and 'K = 0' in msg


def test_oaa_train_cls_list_as_label_source(toy_copy):
    """``cls_label_file`` may be OAA's ``train_cls.txt`` (0-based class indices),
    also as the split list; where the list has fewer classes than the other
    sources, its labels are used."""
    ref = build(toy_copy)
    ids = [ref.get_data_info(i)['img_id'] for i in range(len(ref))]
    vecs = [ref.get_data_info(i)['gt_label'] for i in range(len(ref))]
    fewer = next(n for n, v in enumerate(vecs) if v.sum() >= 2)
    lines = []
    for n, (i, v) in enumerate(zip(ids, vecs)):
        idx = np.flatnonzero(v).tolist()
        if n == fewer:
            idx = idx[:1]  # the official list drops a class here
        lines.append(' '.join([i] + [str(c) for c in idx]))
    with open(osp.join(toy_copy, 'train_cls.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    ds = build(toy_copy, ann_file='train_cls.txt', cls_label_file='train_cls.txt')
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ids
    for n in range(len(ds)):
        got = ds.get_data_info(n)['gt_label']
        assert got.dtype == np.float32 and got.shape == (8, )
        if n != fewer:
            np.testing.assert_array_equal(got, vecs[n])
    got = ds.get_data_info(fewer)['gt_label']
    assert got.sum() == 1 and vecs[fewer].sum() >= 2
    assert got[np.flatnonzero(vecs[fewer])[0]] == 1
    # a 20-class list for the 8-class toy: the index names the line
    with open(osp.join(toy_copy, 'bad_cls.txt'), 'w') as f:
        f.write(f'{ids[0]} 0\n{ids[1]} 14\n')
    with pytest.raises(ValueError, match=r'bad_cls.txt.*line 2.*0\.\.7'):
        build(toy_copy, cls_label_file='bad_cls.txt')
