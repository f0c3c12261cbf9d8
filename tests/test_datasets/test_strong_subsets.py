"""GAIN_ext strong subsets (docs/datasets.md, section 'Strong subsets'):
the dataset option ``strong_subsets``, the subset lists and their tool, the XML boxes,
``LoadExtraSupervision`` and what ``PackWSSSInputs`` hands the model, on data in the
real on-disk formats (VOC XML, palette PNGs, JPEGs)."""
import os.path as osp

import numpy as np
import pytest
import torch

from mmwsss.datasets.strong_subsets import (choose_strong_subsets,
                                            voc_box_masks, write_strong_subsets)
from mmwsss.registry import DATASETS, TRANSFORMS
from mmwsss.utils.io import (atomic_write, read_label_png, read_split_ids, read_voc_xml,
                             save_jpg_atomic, save_png_atomic, voc_palette,
                             voc_xml_names)
from tests.test_tools.test_bad_inputs import error_line, run_inprocess

TOY_PREFIX = dict(img_path='JPEGImages', seg_map_path='SegmentationClass',
                  saliency_path='SaliencyMaps')
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadExtraSupervision'),
    dict(type='RandomFlip', prob=1.0),
    dict(type='PackWSSSInputs'),
]


def _scope():
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def _ids_file(path, ids):
    path.write_text(''.join(f'{i}\n' for i in ids))
    return str(path)


def _toy(root, tmp_path, pixel=('toy_train_00000', 'toy_train_00001'),
         box=('toy_train_00002', 'toy_train_00003'), **kw):
    _scope()
    subsets = {}
    if pixel:
        subsets['pixel'] = _ids_file(tmp_path / 'pixel.txt', pixel)
    if box:
        subsets['box'] = _ids_file(tmp_path / 'box.txt', box)
    cfg = dict(type='ToyWSSSDataset', data_root=root,
               ann_file='ImageSets/Segmentation/train.txt',
               data_prefix=dict(TOY_PREFIX), strong_subsets=subsets,
               pipeline=PIPELINE)
    cfg.update(kw)
    return DATASETS.build(cfg)


def _bbox_mask(mask):
    out = np.zeros_like(mask, np.uint8)
    ys, xs = np.nonzero(mask)
    out[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = 1
    return out


# ------------------------------------------------------------ subset lists
def test_choose_subsets_deterministic_nested_and_halved():
    pool = [f'id{i:04d}' for i in range(100)]
    a = choose_strong_subsets(pool, 20, 'pixel', seed=3)
    assert a == choose_strong_subsets(list(reversed(pool)) + pool[:5], 20,
                                      'pixel', seed=3)  # order, duplicates
    assert a != choose_strong_subsets(pool, 20, 'pixel', seed=4)
    assert a['pixel'] == sorted(a['pixel']) and len(set(a['pixel'])) == 20
    small = choose_strong_subsets(pool, 10, 'pixel', seed=3)['pixel']
    assert set(small) <= set(a['pixel'])  # nested sizes
    assert choose_strong_subsets(pool, 20, 'box', seed=3)['box'] == a['pixel']
    bp = choose_strong_subsets(pool, 20, 'b+p', seed=3)
    assert len(bp['pixel']) == len(bp['box']) == 10
    assert not set(bp['pixel']) & set(bp['box'])
    assert set(bp['pixel']) | set(bp['box']) == set(a['pixel'])
    odd = choose_strong_subsets(pool, 7, 'b+p', seed=3)
    assert (len(odd['pixel']), len(odd['box'])) == (4, 3)
    assert set(choose_strong_subsets(pool, 10, 'b+p', seed=3)['pixel']) <= \
        set(bp['pixel'])
    assert choose_strong_subsets(pool, 100, 'pixel')['pixel'] == pool
    for bad in (0, 101):
        with pytest.raises(ValueError, match='1..100'):
            choose_strong_subsets(pool, bad, 'pixel')
    with pytest.raises(ValueError, match='kind'):
        choose_strong_subsets(pool, 5, 'mask')


def test_tool_writes_the_lists(toy_root, tmp_path):
    out = tmp_path / 'GAIN'
    p = run_inprocess('misc/make_strong_subsets.py', '--data-root', toy_root,
                      '--num', 4, 8, '--kind', 'pixel', 'b+p', '--seed', 1,
                      '--out-dir', out)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in out.iterdir()) == [
        'bp_4_box.txt', 'bp_4_pixel.txt', 'bp_8_box.txt', 'bp_8_pixel.txt',
        'pixel_4.txt', 'pixel_8.txt']
    assert "strong_subsets=dict(pixel='" in p.stdout
    text = (out / 'pixel_8.txt').read_text()
    assert text.startswith('# GAIN_ext pixel subset of 8') and 'seed 1' in text
    pool = read_split_ids(osp.join(toy_root, 'ImageSets/Segmentation/train.txt'))
    assert read_split_ids(str(out / 'pixel_8.txt')) == \
        choose_strong_subsets(pool, 8, 'pixel', seed=1)['pixel']
    first = (out / 'bp_8_box.txt').read_bytes()
    run_inprocess('misc/make_strong_subsets.py', '--data-root', toy_root,
                  '--num', 8, '--kind', 'b+p', '--seed', 1, '--out-dir', out)
    assert (out / 'bp_8_box.txt').read_bytes() == first  # deterministic
    # the lists load as strong subsets
    ds = _toy(toy_root, tmp_path, pixel=None, box=None, pipeline=[],
              strong_subsets=dict(pixel=str(out / 'bp_8_pixel.txt'),
                                  box=str(out / 'bp_8_box.txt')))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert sum(i['strong_pixel'] for i in infos) == 4
    assert sum(i['strong_box'] for i in infos) == 4
    line = error_line(
        run_inprocess('misc/make_strong_subsets.py', '--data-root', toy_root,
                      '--num', 17, '--out-dir', out), 'make_strong_subsets.py')
    assert '--num [17]' in line and '16 ids' in line


# -------------------------------------------------------------- the dataset
def test_flags_and_boxes_in_data_infos(toy_root, tmp_path):
    ds = _toy(toy_root, tmp_path, pipeline=[])
    infos = {ds.get_data_info(i)['img_id']: ds.get_data_info(i)
             for i in range(len(ds))}
    assert [i for i, v in infos.items() if v['strong_pixel']] == [
        'toy_train_00000', 'toy_train_00001']
    assert [i for i, v in infos.items() if v['strong_box']] == [
        'toy_train_00002', 'toy_train_00003']
    weak = infos['toy_train_00004']
    assert weak['strong_pixel'] is False and weak['strong_box'] is False
    assert 'boxes' not in weak and 'boxes' not in infos['toy_train_00000']
    box = infos['toy_train_00002']
    xml = read_voc_xml(box['xml_path'])
    assert box['box_ann_size'] == (128, 128) == xml['size']
    np.testing.assert_array_equal(
        box['boxes'], np.array([o['bbox'] for o in xml['objects']], np.float32))
    names = list(ds.metainfo['classes'])
    assert box['box_labels'].tolist() == [
        names.index(n) - 1 for n in voc_xml_names(box['xml_path'])]
    assert box['box_difficult'].dtype == bool
    # a dataset without the option has no flags
    plain = DATASETS.build(dict(type='ToyWSSSDataset', data_root=toy_root,
                                ann_file='ImageSets/Segmentation/train.txt'))
    assert 'strong_pixel' not in plain.get_data_info(0)


def test_strong_subset_errors(toy_root, tmp_path):
    bad = _ids_file(tmp_path / 'bad.txt', ['toy_train_00000', 'toy_val_00001'])
    with pytest.raises(KeyError, match=r"1 id\(s\) of the id list '.*bad.txt' "
                       r'\(strong_subsets.box\) are not in the split.*'
                       'toy_val_00001'):
        _toy(toy_root, tmp_path, box=None, pipeline=[],
             strong_subsets=dict(box=bad))
    with pytest.raises(ValueError, match=r'1 id\(s\) are in both.*toy_train_00001'):
        _toy(toy_root, tmp_path, box=('toy_train_00001', ), pipeline=[])
    with pytest.raises(FileNotFoundError,
                       match=r'nope.txt.*\(strong_subsets.pixel\) does not exist'
                       '.*make_strong_subsets'):
        _toy(toy_root, tmp_path, pipeline=[],
             strong_subsets=dict(pixel='ImageSets/GAIN/nope.txt'))
    with pytest.raises(ValueError, match=r"unknown strong_subsets keys \['mask'\]"):
        _toy(toy_root, tmp_path, pipeline=[], strong_subsets=dict(mask=bad))
    with pytest.raises(ValueError,
                       match='strong_subsets.pixel needs.*data_prefix.seg_map_path'):
        _toy(toy_root, tmp_path, box=None, pipeline=[],
             data_prefix=dict(img_path='JPEGImages'))
    with pytest.raises(ValueError,
                       match='strong_subsets.box needs.*data_prefix.saliency_path'):
        _toy(toy_root, tmp_path, pipeline=[],
             data_prefix=dict(img_path='JPEGImages',
                              seg_map_path='SegmentationClass'))
    empty = tmp_path / 'empty.txt'
    empty.write_text('# nothing\n')
    with pytest.raises(ValueError, match='strong_subsets.pixel.*lists no image'):
        _toy(toy_root, tmp_path, box=None, pipeline=[],
             strong_subsets=dict(pixel=str(empty)))


def test_coco_has_no_boxes(tmp_path):
    from mmwsss.datasets import COCOWSSSDataset
    from mmwsss.utils.io import save_class_labels
    root = tmp_path / 'coco'
    img_id = 'COCO_train2014_000000000009'
    save_jpg_atomic(str(root / 'train2014' / f'{img_id}.jpg'),
                    np.zeros((8, 8, 3), np.uint8))
    save_png_atomic(str(root / 'SegmentationClass/train2014' / f'{img_id}.png'),
                    np.ones((8, 8), np.uint8))
    (root / 'ImageSets').mkdir()
    (root / 'ImageSets' / 'train.txt').write_text(img_id + '\n')
    save_class_labels(str(root / 'cls_labels_coco.npy'),
                      {img_id: np.eye(80, dtype=np.float32)[0]})
    ids = _ids_file(tmp_path / 'ids.txt', [img_id])
    ds = COCOWSSSDataset(data_root=str(root), strong_subsets=dict(pixel=ids))
    assert ds.get_data_info(0)['strong_pixel'] is True
    with pytest.raises(ValueError, match='strong_subsets.box needs VOC XML'):
        COCOWSSSDataset(data_root=str(root), strong_subsets=dict(box=ids))


# --------------------------------------------------------- the transform
def test_packed_samples_by_kind(toy_root, tmp_path):
    from PIL import Image
    ds = _toy(toy_root, tmp_path)
    num_fg = len(ds.metainfo['classes']) - 1
    for idx in range(5):
        info = ds.get_data_info(idx)
        img_id = info['img_id']
        sample = ds[idx]['data_samples']
        meta = sample.metainfo
        assert meta['strong_pixel'] is info['strong_pixel']
        assert meta['strong_box'] is info['strong_box']
        assert meta['flip'] is True
        gt = read_label_png(osp.join(toy_root, 'SegmentationClass',
                                     img_id + '.png'))[:, ::-1]
        if info['strong_pixel']:
            seg = sample.gt_sem_seg.data
            assert seg.dtype == torch.int64 and seg.shape == (1, 128, 128)
            np.testing.assert_array_equal(seg[0].numpy(), gt)
        else:
            assert not hasattr(sample, 'gt_sem_seg')
        if info['strong_box']:
            box = sample.gt_box_mask.data
            assert box.dtype == torch.uint8 and box.shape == (num_fg, 128, 128)
            for c in range(num_fg):
                # the toy boxes are the boxes of the visible parts: exactly the
                # bounding box of the class's GT pixels (one object per class)
                want = (_bbox_mask(gt == c + 1) if (gt == c + 1).any() else
                        np.zeros_like(gt))
                np.testing.assert_array_equal(box[c].numpy(), want, err_msg=c)
            sal = np.array(Image.open(osp.join(toy_root, 'SaliencyMaps',
                                               img_id + '.png')))[:, ::-1]
            np.testing.assert_allclose(sample.gt_saliency.data[0].numpy(),
                                       sal / 255., atol=1e-6)
        else:
            assert not hasattr(sample, 'gt_box_mask')
            assert not hasattr(sample, 'gt_saliency')


def test_transform_errors(toy_root, tmp_path):
    ds = _toy(toy_root, tmp_path, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
        dict(type='LoadExtraSupervision'), dict(type='PackWSSSInputs')])
    with pytest.raises(ValueError, match='remove LoadAnnotations'):
        ds[4]
    ds = _toy(toy_root, tmp_path, pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(64, 64), keep_ratio=True),
        dict(type='LoadExtraSupervision')])
    with pytest.raises(ValueError, match='right after LoadImageFromFile'):
        ds[0]
    plain = DATASETS.build(dict(
        type='ToyWSSSDataset', data_root=toy_root,
        ann_file='ImageSets/Segmentation/train.txt',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadExtraSupervision')]))
    with pytest.raises(KeyError, match='strong_subsets'):
        plain[0]
    # MMCV's own Resize moves gt_seg_map only: the packer refuses the stale box mask
    from mmcv.transforms import Resize as MMCVResize
    ds = _toy(toy_root, tmp_path, pipeline=[])
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    extra = TRANSFORMS.build(dict(type='LoadExtraSupervision'))
    pack = TRANSFORMS.build(dict(type='PackWSSSInputs'))
    results = extra(load(ds.get_data_info(2)))
    results = MMCVResize(scale=(64, 64), keep_ratio=True)(results)
    with pytest.raises(ValueError, match=r'gt_box_mask is \(128, 128\) but the '
                       r'image is \(64, 64\)'):
        pack(results)


def test_meta_flags_kept_with_custom_meta_keys(toy_root, tmp_path):
    ds = _toy(toy_root, tmp_path, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadExtraSupervision'),
        dict(type='PackWSSSInputs', meta_keys=('img_shape', ))])
    meta = ds[2]['data_samples'].metainfo
    assert meta['strong_box'] is True and meta['strong_pixel'] is False
    assert meta['img_id'] == 'toy_train_00002'


# ------------------------------------------------ VOC XML and box masks
def test_voc_box_masks_pixel_convention():
    boxes = np.array([[3, 2, 5, 4], [1, 1, 1, 1], [8, 7, 20, 30]], np.float32)
    m = voc_box_masks(boxes, [0, 1, 0], 3, (9, 10))
    assert m.shape == (9, 10, 3) and m.dtype == np.uint8
    want = np.zeros((9, 10), np.uint8)
    want[1:4, 2:5] = 1  # 1-based inclusive (3..5, 2..4)
    want[6:, 7:] = 1  # clipped to the image
    np.testing.assert_array_equal(m[..., 0], want)
    assert m[..., 1].sum() == 1 and m[0, 0, 1] == 1
    assert not m[..., 2].any()
    # scaled from the annotation size: the same box on a 2x image covers 2x
    m2 = voc_box_masks(boxes[:1], [0], 1, (18, 20), ann_size=(10, 9))
    np.testing.assert_array_equal(m2[..., 0],
                                  np.kron(want * 0 + _only(want, 1, 4, 2, 5),
                                          np.ones((2, 2), np.uint8)))
    # difficult boxes are kept unless told otherwise
    d = np.array([False, True, False])
    assert voc_box_masks(boxes, [0, 1, 0], 3, (9, 10), difficult=d)[..., 1].any()
    assert not voc_box_masks(boxes, [0, 1, 0], 3, (9, 10), difficult=d,
                             with_difficult=False)[..., 1].any()
    with pytest.raises(ValueError, match='box class index 5'):
        voc_box_masks(boxes, [0, 5, 0], 3, (9, 10))


def _only(shape_like, y0, y1, x0, x1):
    out = np.zeros_like(shape_like)
    out[y0:y1, x0:x1] = 1
    return out


@pytest.fixture(scope='module')
def voc_tree(tmp_path_factory):
    """The VOC 2012 format tree (JPEG sizes, XML with float boxes, difficult
    objects and person parts, palette PNGs with the 255 band, DSS saliency)."""
    from mmwsss.datasets.format_trees import make_voc_format_tree
    root = str(tmp_path_factory.mktemp('voc_strong'))
    return make_voc_format_tree(root, seed=0, num_voc_train=3, num_voc_val=1,
                                num_sbd_only=2)


def test_voc_format_tree(voc_tree, tmp_path):
    _scope()
    train = voc_tree['voc_train']
    ds = DATASETS.build(dict(
        type='VOCWSSSDataset', data_root=voc_tree['voc_root'],
        ann_file='ImageSets/Segmentation/train.txt', label_source='xml',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass',
                         saliency_path='SaliencyDSS'),
        strong_subsets=dict(pixel=_ids_file(tmp_path / 'p.txt', train[:1]),
                            box=_ids_file(tmp_path / 'b.txt', train[1:])),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadExtraSupervision'),
                  dict(type='PackWSSSInputs')]))
    names = list(ds.metainfo['classes'])
    for idx in range(len(ds)):
        info = ds.get_data_info(idx)
        img_id = info['img_id']
        sample = ds[idx]['data_samples']
        gt = read_label_png(osp.join(voc_tree['voc_root'], 'SegmentationClass',
                                     img_id + '.png'))
        if info['strong_pixel']:
            seg = sample.gt_sem_seg.data[0].numpy()
            np.testing.assert_array_equal(seg, gt)
            assert (seg == 255).any()  # VOC's border band stays ignore
            continue
        objects = voc_tree['objects'][img_id]
        # one box per object, the parts of a person are not boxes
        assert len(info['boxes']) == len(objects)
        np.testing.assert_allclose(info['boxes'],
                                   [o['bbox'] for o in objects])
        assert info['box_difficult'].tolist() == [bool(o['difficult'])
                                                  for o in objects]
        assert info['box_labels'].tolist() == [o['label'] - 1 for o in objects]
        assert info['box_ann_size'] == voc_tree['sizes'][img_id]
        box = sample.gt_box_mask.data.numpy()
        assert box.shape == (20, ) + gt.shape
        for o in objects:  # every GT pixel of a class is inside its boxes
            c = o['label'] - 1
            assert box[c][gt == c + 1].all()
        assert sample.gt_saliency.data.shape == (1, ) + gt.shape
    assert any(o['difficult'] for i in train[1:]
               for o in voc_tree['objects'][i])
    assert any(o['parts'] for i in train for o in voc_tree['objects'][i])
    assert names[0] == 'background'


# ------------------------------------- geometric augmentation moves the maps
def _synthetic_voc(root):
    """Three copies of one picture (an off-centre red rectangle) as a pixel, a box
    and a weak image, with the rectangle's mask, box and saliency."""
    h, w = 60, 90
    img = np.full((h, w, 3), 20, np.uint8)
    img[10:40, 20:50] = (230, 20, 20)  # RGB red, rows 10..39, cols 20..49
    label = np.zeros((h, w), np.uint8)
    label[10:40, 20:50] = 1
    sal = (label * 255).astype(np.uint8)
    ids = ['p', 'b', 'w']
    xml = ('<annotation><size><width>90</width><height>60</height></size>'
           '<object><name>aeroplane</name><difficult>0</difficult><bndbox>'
           '<xmin>21</xmin><ymin>11</ymin><xmax>50</xmax><ymax>40</ymax>'
           '</bndbox></object></annotation>\n')
    for i in ids:
        save_jpg_atomic(osp.join(root, 'JPEGImages', i + '.jpg'), img, 98)
        save_png_atomic(osp.join(root, 'SegmentationClass', i + '.png'), label,
                        voc_palette())
        save_png_atomic(osp.join(root, 'SaliencyMaps', i + '.png'), sal)
        with atomic_write(osp.join(root, 'Annotations', i + '.xml'), 'w') as f:
            f.write(xml)
    with open(osp.join(root, 'train.txt'), 'w') as f:
        f.write('\n'.join(ids) + '\n')
    with open(osp.join(root, 'pixel.txt'), 'w') as f:
        f.write('p\n')
    with open(osp.join(root, 'box.txt'), 'w') as f:
        f.write('b\n')


def _aligned(a, b, tol=2):
    """Every pixel of one mask is within ``tol`` pixels of the other (resizing
    images bilinearly and maps by nearest neighbour differs at the edges only)."""
    import cv2
    kernel = np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)
    grow = {k: cv2.dilate(m.astype(np.uint8), kernel) > 0
            for k, m in (('a', a), ('b', b))}
    return bool((a <= grow['b']).all() and (b <= grow['a']).all())


def test_maps_follow_resize_crop_flip(tmp_path):
    _scope()
    import random
    root = str(tmp_path / 'syn')
    _synthetic_voc(root)
    ds = DATASETS.build(dict(
        type='VOCWSSSDataset', data_root=root, ann_file='train.txt',
        label_source='xml',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass',
                         saliency_path='SaliencyMaps'),
        strong_subsets=dict(pixel='pixel.txt', box='box.txt'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadExtraSupervision'),
            dict(type='RandomResize', scale=(90, 60), ratio_range=(0.5, 2.0),
                 keep_ratio=True),
            dict(type='RandomCrop', crop_size=(48, 48)),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackWSSSInputs'),
        ]))
    flips, checked = set(), 0
    for seed in range(12):
        np.random.seed(seed)
        random.seed(seed)
        for idx in range(3):
            out = ds[idx]
            sample = out['data_samples']
            red = out['inputs'][2].numpy() > 128  # BGR: channel 2 is red
            flips.add(sample.metainfo['flip'])
            if idx == 0:
                maps = [sample.gt_sem_seg.data[0].numpy() == 1]
            elif idx == 1:
                maps = [sample.gt_box_mask.data[0].numpy() == 1,
                        sample.gt_saliency.data[0].numpy() > 0.5]
                assert not sample.gt_box_mask.data[1:].any()
            else:
                assert not hasattr(sample, 'gt_sem_seg')
                assert not hasattr(sample, 'gt_box_mask')
                continue
            for m in maps:
                assert m.shape == red.shape
                assert _aligned(m, red), (seed, idx)
                checked += int(m.sum() > 100)
    assert flips == {True, False} and checked >= 10
