"""The official on-disk formats (VOC 2012, SBD, COCO 2014, ImageNet weight files) made
by mmwsss.datasets.format_trees, the real converters on them, and the shipped dataset /
model configs on the converted trees (fixtures: tests/fixtures_formats.py)."""
import copy
import json
import os
import os.path as osp
import subprocess
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mmwsss.datasets.format_trees import (COCO_CATEGORIES, VOC_CLASSES,
                                          VOC_IMAGE_SIZES)
from mmwsss.utils.io import (load_class_labels, read_split_ids, voc_palette,
                             voc_xml_names)
from tests.conftest import REPO, run_env

VOC_VALUES = set(range(21)) | {255}


def _cfg(rel):
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, rel))


def _registered():
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def _xml_root(voc_root, img_id):
    return ET.parse(osp.join(voc_root, 'Annotations', img_id + '.xml')).getroot()


def _multi_hot(labels, k=20):
    v = np.zeros(k, np.float32)
    v[np.asarray(labels, int) - 1] = 1
    return v


# ---------------------------------------------------------------- VOC formats
def test_voc_tree_images_and_xml(voc_format_root):
    m = voc_format_root
    voc = m['voc_root']
    assert set(m['all_ids']) == set(m['voc_train']) | set(m['voc_val']) | set(
        m['sbd_only'])
    assert {m['sizes'][i] for i in m['all_ids']} <= set(VOC_IMAGE_SIZES)
    assert (127, 500) in m['sizes'].values()
    seen_float = seen_parts = seen_difficult = 0
    for img_id in m['all_ids']:
        assert len(img_id) == 11 and img_id[4] == '_'
        with Image.open(osp.join(voc, 'JPEGImages', img_id + '.jpg')) as im:
            assert im.format == 'JPEG' and im.mode == 'RGB'
            w, h = im.size
        root = _xml_root(voc, img_id)
        assert root.tag == 'annotation'
        assert root.findtext('folder') == 'VOC2012'
        assert root.findtext('filename') == img_id + '.jpg'
        assert root.find('source/database') is not None
        size = root.find('size')
        assert (int(size.findtext('width')), int(size.findtext('height')),
                int(size.findtext('depth'))) == (w, h, 3)
        assert root.findtext('segmented') == (
            '0' if img_id in m['sbd_only'] else '1')
        objs = root.findall('object')
        assert len(objs) == len(m['objects'][img_id]) >= 1
        for obj in objs:
            assert obj.findtext('name') in VOC_CLASSES
            assert obj.findtext('pose') and obj.findtext('truncated') in '01'
            box = [obj.findtext(f'bndbox/{k}')
                   for k in ('xmin', 'ymin', 'xmax', 'ymax')]
            x0, y0, x1, y1 = map(float, box)
            assert 0 < x0 < x1 <= w and 0 < y0 < y1 <= h
            seen_float += any('.' in b for b in box)
            seen_difficult += obj.findtext('difficult') == '1'
            for part in obj.findall('part'):
                assert obj.findtext('name') == 'person'
                assert part.findtext('name') in ('head', 'hand', 'foot')
                assert part.find('bndbox/xmin') is not None
                seen_parts += 1
        # parts are not objects: the reader of the converter and the dataset
        assert voc_xml_names(osp.join(voc, 'Annotations', img_id + '.xml')) == [
            o['name'] for o in m['objects'][img_id]
        ]
    assert seen_float and seen_parts and seen_difficult


def test_voc_tree_masks_mats_saliency(voc_format_root):
    from scipy import sparse
    from scipy.io import loadmat
    m = voc_format_root
    voc, sbd = m['voc_root'], m['sbd_root']
    palette = voc_palette()
    for img_id in m['voc_trainval']:
        w, h = m['sizes'][img_id]
        with Image.open(osp.join(voc, 'SegmentationClass', img_id + '.png')) as im:
            assert im.mode == 'P' and im.size == (w, h)
            pal = np.array(im.getpalette()[:256 * 3], np.uint8).reshape(-1, 3)
            mask = np.array(im)
        np.testing.assert_array_equal(pal[:21], palette[:21])
        values = set(np.unique(mask).tolist())
        assert values <= VOC_VALUES and 255 in values
        assert values - {0, 255} == set(m['labels'][img_id])
        # the void band separates every pair of regions: no two 4-neighbours
        # with different non-void labels, and it is about 5 px wide
        for a, b in ((mask[:, :-1], mask[:, 1:]), (mask[:-1], mask[1:])):
            assert not np.any((a != b) & (a != 255) & (b != 255))
        void = (mask == 255).astype(np.uint8)
        rim = void & ~cv2.erode(void, np.ones((3, 3), np.uint8))
        width = void.sum() / (rim.sum() / 2)  # area / length of the band
        assert 3.5 <= width <= 7, width

    sbd_ids = set(m['sbd_train']) | set(m['sbd_val'])
    assert set(m['sbd_only']) <= sbd_ids
    assert set(m['voc_train']) & sbd_ids and set(m['voc_val']) & set(
        m['sbd_train'])
    assert read_split_ids(osp.join(sbd, 'train.txt')) == m['sbd_train']
    assert read_split_ids(osp.join(sbd, 'val.txt')) == m['sbd_val']
    for img_id in sorted(sbd_ids):
        w, h = m['sizes'][img_id]
        mat = loadmat(osp.join(sbd, 'cls', img_id + '.mat'))
        gt = mat['GTcls'][0, 0]
        seg = gt['Segmentation']
        assert seg.dtype == np.uint8 and seg.shape == (h, w)
        assert set(np.unique(seg).tolist()) - {0} == set(m['labels'][img_id])
        assert gt['CategoriesPresent'].ravel().tolist() == m['labels'][img_id]
        bounds = gt['Boundaries']
        assert bounds.shape == (20, 1) and sparse.issparse(bounds[0, 0])
        assert bounds[0, 0].shape == (h, w)
        inst = loadmat(osp.join(sbd, 'inst', img_id + '.mat'))['GTinst'][0, 0]
        assert inst['Segmentation'].shape == (h, w)
        assert len(inst['Categories']) == len(m['objects'][img_id])
        assert osp.isfile(osp.join(sbd, 'img', img_id + '.jpg'))
        if img_id in m['voc_trainval']:  # same objects as the VOC mask
            voc_mask = np.array(Image.open(
                osp.join(voc, 'SegmentationClass', img_id + '.png')))
            keep = voc_mask != 255
            np.testing.assert_array_equal(seg[keep], voc_mask[keep])

    for img_id in m['all_ids']:
        with Image.open(osp.join(m['saliency_dir'], img_id + '.png')) as im:
            assert im.mode == 'L' and im.size == m['sizes'][img_id]
            sal = np.array(im)
        fg = np.zeros_like(sal, bool)
        # objects come from the SBD / VOC masks where they exist, else the boxes
        for o in m['objects'][img_id]:
            x0, y0, x1, y1 = (int(round(v)) for v in o['bbox'])
            fg[y0:y1, x0:x1] = True
        assert sal[fg].mean() > sal[~fg].mean() + 60

    seg_sets = osp.join(voc, 'ImageSets', 'Segmentation')
    assert read_split_ids(osp.join(seg_sets, 'train.txt')) == m['voc_train']
    assert read_split_ids(osp.join(seg_sets, 'val.txt')) == m['voc_val']
    assert read_split_ids(osp.join(seg_sets, 'trainval.txt')) == m['voc_trainval']


def test_voc_converter_outputs(voc_format_root):
    m = voc_format_root
    voc = m['data_root']
    seg_sets = osp.join(voc, 'ImageSets', 'Segmentation')
    expect = sorted((set(m['sbd_train']) | set(m['sbd_val']) | set(m['voc_train']))
                    - set(m['voc_val']))
    train_aug = read_split_ids(osp.join(seg_sets, 'train_aug.txt'))
    assert train_aug == expect == m['train_aug']
    leaked = set(m['voc_val']) & set(m['sbd_train'])
    assert leaked and not leaked & set(train_aug)  # SBD train ∩ VOC val left out
    assert read_split_ids(osp.join(seg_sets, 'aug.txt')) == sorted(
        set(expect) - set(m['voc_train']))

    for img_id in train_aug:
        w, h = m['sizes'][img_id]
        with Image.open(osp.join(voc, 'SegmentationClassAug',
                                 img_id + '.png')) as im:
            assert im.mode == 'P' and im.size == (w, h)
            aug = np.array(im)
        assert set(np.unique(aug).tolist()) <= VOC_VALUES
        if img_id in m['voc_train']:  # the VOC mask (with its band) is kept
            voc_mask = np.array(Image.open(
                osp.join(voc, 'SegmentationClass', img_id + '.png')))
            np.testing.assert_array_equal(aug, voc_mask)
        else:  # SBD mask, no void band
            assert 255 not in aug
            assert set(np.unique(aug).tolist()) - {0} == set(m['labels'][img_id])

    labels = load_class_labels(osp.join(voc, 'cls_labels.npy'))
    assert labels.num_classes == 20
    assert len(labels) == len(set(train_aug) | set(m['voc_trainval']))
    n_difficult = 0
    for img_id in set(train_aug) | set(m['voc_trainval']):
        objs = m['objects'][img_id]
        names = {o['name'] for o in objs}  # difficult included, parts not
        n_difficult += sum(o['difficult'] for o in objs)
        np.testing.assert_array_equal(
            labels[img_id],
            _multi_hot([VOC_CLASSES.index(n) + 1 for n in names]))
        np.testing.assert_array_equal(labels[img_id],
                                      _multi_hot(m['labels'][img_id]))
    assert n_difficult >= 1


# ------------------------------------------------------- VOC dataset configs
def _check_packed(out, ids, table, num_classes=20):
    inputs, sample = out['inputs'], out['data_samples']
    img_id = sample.metainfo['img_id']
    assert img_id in ids
    assert inputs.ndim == 3 and inputs.shape[0] == 3
    np.testing.assert_array_equal(sample.gt_label.numpy(), table[img_id])
    assert sample.gt_label.shape == (num_classes, )
    if 'gt_sem_seg' in sample:
        seg = sample.gt_sem_seg.data
        # train pipelines: the input's size; test pipelines that resize before
        # LoadAnnotations: the original size (evaluated there)
        assert tuple(seg.shape[-2:]) in (tuple(inputs.shape[-2:]),
                                         tuple(sample.metainfo['ori_shape']))
        assert set(torch.unique(seg).tolist()) <= set(range(num_classes + 1)) | {
            255}
    return img_id


VOC_CASES = [
    # (config, dataloader, expected split, loads masks)
    ('configs/_base_/datasets/voc12_aug_cls.py', 'train_dataloader',
     'train_aug', False),
    ('configs/_base_/datasets/voc12_aug_cls.py', 'val_dataloader', 'voc_train',
     True),
    ('configs/_base_/datasets/voc12_aug_deeplab.py', 'train_dataloader',
     'train_aug', True),
    ('configs/_base_/datasets/voc12_aug_deeplab.py', 'val_dataloader',
     'voc_val', True),
    ('configs/_base_/datasets/voc12.py', 'train_dataloader', 'voc_train', True),
    ('configs/_base_/datasets/voc12.py', 'val_dataloader', 'voc_val', True),
]


@pytest.mark.parametrize('config,loader,split,masks', VOC_CASES)
def test_voc_configs_on_converted_tree(voc_format_root, config, loader, split,
                                       masks):
    from mmwsss.registry import DATASETS
    _registered()
    m = voc_format_root
    cfg = _cfg(config)
    ds_cfg = copy.deepcopy(cfg[loader]['dataset'])
    ds_cfg['data_root'] = m['data_root']
    ds = DATASETS.build(ds_cfg)
    ids = m[split]
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ids
    table = load_class_labels(osp.join(m['data_root'], 'cls_labels.npy'))
    seen = set()
    n = min(len(ds), 4)
    for i in range(n):
        out = ds[i]
        seen.add(_check_packed(out, ids, table))
        assert ('gt_sem_seg' in out['data_samples']) == masks
    assert len(seen) == n


def test_voc_deeplab_tta_pipeline(voc_format_root):
    from mmwsss.registry import DATASETS
    _registered()
    cfg = _cfg('configs/_base_/datasets/voc12_aug_deeplab.py')
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.update(data_root=voc_format_root['data_root'],
                  pipeline=cfg.tta_pipeline)
    ds = DATASETS.build(ds_cfg)
    out = ds[0]
    assert len(out['inputs']) == len(out['data_samples']) == 10
    sample = out['data_samples'][0]
    w, h = voc_format_root['sizes'][sample.metainfo['img_id']]
    assert sample.metainfo['ori_shape'] == (h, w)


def test_voc_label_sources_and_saliency_agree(voc_format_root):
    """cls_labels.npy (converter), the XML (parts ignored) and the masks give the
    same labels; the DSS saliency folder loads through LoadSaliencyMap."""
    from mmwsss.registry import DATASETS
    _registered()
    m = voc_format_root
    common = dict(
        type='VOCWSSSDataset', data_root=m['data_root'],
        ann_file='ImageSets/Segmentation/train_aug.txt')
    prefix = dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug',
                  saliency_path='SaliencyDSS')
    dsets = {
        src: DATASETS.build(dict(common, label_source=src, data_prefix=prefix))
        for src in ('cls_file', 'xml', 'mask')
    }
    for i in range(len(dsets['cls_file'])):
        ref = dsets['cls_file'].get_data_info(i)['gt_label']
        for src in ('xml', 'mask'):
            np.testing.assert_array_equal(
                dsets[src].get_data_info(i)['gt_label'], ref, err_msg=src)
    ds = DATASETS.build(dict(
        common, data_prefix=prefix, pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='LoadSaliencyMap'),
            dict(type='PackWSSSInputs')
        ]))
    sample = ds[0]['data_samples']
    sal = sample.gt_saliency.data
    assert sal.shape[-2:] == sample.gt_sem_seg.data.shape[-2:]
    assert 0 <= float(sal.min()) and float(sal.max()) <= 1


# ----------------------------------------------------------------------- COCO
def test_coco_tree_format(coco_format_root):
    m = coco_format_root
    cat_ids = [c[0] for c in COCO_CATEGORIES]
    assert len(cat_ids) == 80 and max(cat_ids) == 90
    assert set(range(1, 91)) - set(cat_ids) == {12, 26, 29, 30, 45, 66, 68,
                                                 69, 71, 83}
    n_crowd = n_multi = 0
    for split in ('train2014', 'val2014'):
        with open(m['ann_files'][split]) as f:
            coco = json.load(f)
        assert list(coco) == ['info', 'images', 'licenses', 'annotations',
                              'categories']
        assert [(c['id'], c['name']) for c in coco['categories']] == [
            (i, n) for i, n, _ in COCO_CATEGORIES
        ]
        assert coco['categories'][0] == dict(supercategory='person', id=1,
                                             name='person')
        images = {im['id']: im for im in coco['images']}
        for im in coco['images']:
            assert im['file_name'] == f"COCO_{split}_{im['id']:012d}.jpg"
            with Image.open(osp.join(m['root'], split, im['file_name'])) as f:
                assert f.format == 'JPEG' and f.mode == 'RGB'
                assert f.size == (im['width'], im['height'])
        annotated = set()
        for a in coco['annotations']:
            im = images[a['image_id']]
            annotated.add(a['image_id'])
            assert a['category_id'] in cat_ids
            assert isinstance(a['area'], (int, float)) and a['area'] > 0
            assert len(a['bbox']) == 4 and all(
                isinstance(v, float) for v in a['bbox'])
            if a['iscrowd']:
                rle = a['segmentation']
                assert rle['size'] == [im['height'], im['width']]
                assert isinstance(rle['counts'], list)
                assert sum(rle['counts']) == im['height'] * im['width']
                n_crowd += 1
            else:
                assert all(len(p) >= 6 and len(p) % 2 == 0
                           for p in a['segmentation'])
                n_multi += len(a['segmentation']) > 1
        if split == 'train2014':
            assert len(images) - len(annotated) == len(m['empty_ids']) == 1
    assert n_crowd >= 1 and n_multi >= 1


def test_coco_converter_outputs(coco_format_root):
    m = coco_format_root
    root = m['data_root']
    train = read_split_ids(osp.join(root, 'ImageSets', 'train.txt'))
    val = read_split_ids(osp.join(root, 'ImageSets', 'val.txt'))
    assert train == [i for i in m['images']['train2014']
                     if i not in m['empty_ids']]
    assert val == m['images']['val2014']
    labels = load_class_labels(osp.join(root, 'cls_labels_coco.npy'))
    assert labels.num_classes == 80 and len(labels) == len(train) + len(val)
    person = m['cat2label'][1]
    for split, ids in (('train2014', train), ('val2014', val)):
        for img_id in ids:
            w, h = m['sizes'][img_id]
            with Image.open(osp.join(root, 'SegmentationClass', split,
                                     img_id + '.png')) as im:
                assert im.mode == 'P' and im.size == (w, h)
                mask = np.array(im)
            assert set(np.unique(mask).tolist()) - {0} == set(
                m['labels'][img_id])
            np.testing.assert_array_equal(
                labels[img_id], _multi_hot(m['labels'][img_id], 80))
            if img_id in m['crowd_ids']:  # the RLE crowd is decoded
                assert person in m['labels'][img_id]
                assert (mask[int(0.85 * h)] == person).any()


@pytest.mark.parametrize('loader,split', [('train_dataloader', 'train2014'),
                                          ('val_dataloader', 'val2014')])
def test_coco_config_on_converted_tree(coco_format_root, loader, split):
    from mmwsss.registry import DATASETS
    _registered()
    m = coco_format_root
    cfg = _cfg('configs/_base_/datasets/coco14.py')
    ds_cfg = copy.deepcopy(cfg[loader]['dataset'])
    ds_cfg['data_root'] = m['data_root']
    ds = DATASETS.build(ds_cfg)
    ids = [i for i in m['images'][split] if i not in m['empty_ids']]
    assert len(ds) == len(ids)
    table = load_class_labels(osp.join(m['data_root'], 'cls_labels_coco.npy'))
    for i in range(min(len(ds), 3)):
        _check_packed(ds[i], ids, table, num_classes=80)


# -------------------------------------------------------------------- weights
WEIGHT_CASES = [
    # (config whose model.backbone is built, weight file)
    ('configs/_base_/models/cam_vgg16.py', 'vgg16-397923af.pth'),
    ('configs/_base_/models/largefov_vgg16.py', 'vgg16-397923af.pth'),
    ('configs/_base_/models/deeplabv2_r101.py',
     'deeplab_resnet101_imagenet_mmwsss.pth'),
    ('configs/deeplab/deeplabv2_r101-v1c_voc12aug_pseudo.py',
     'resnet101_v1c-e67eebb6.pth'),
]


@pytest.mark.parametrize('config,name', WEIGHT_CASES)
def test_standin_weights_load_into_config_backbones(standin_weights, config,
                                                     name):
    from mmwsss.models.backbones import convert_vgg16_state_dict
    from mmwsss.registry import MODELS
    _registered()
    path = standin_weights[name]
    assert osp.dirname(path) == osp.dirname(standin_weights['vgg16-397923af.pth'])
    backbone_cfg = copy.deepcopy(_cfg(config).model.backbone)
    assert osp.basename(backbone_cfg.init_cfg.checkpoint) == name
    backbone_cfg.init_cfg.checkpoint = path
    with torch.device('cpu'):
        backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    if name == 'vgg16-397923af.pth':
        # the torchvision file itself: a plain state dict, classifier included
        assert 'classifier.6.weight' in ckpt and 'features.28.weight' in ckpt
        expected = convert_vgg16_state_dict(ckpt)
    else:
        assert set(ckpt) >= {'state_dict'}
        expected = ckpt['state_dict']
    state = backbone.state_dict()
    assert set(expected) == set(state), (
        f'missing {sorted(set(state) - set(expected))[:5]}, unexpected '
        f'{sorted(set(expected) - set(state))[:5]}')
    for k, v in state.items():
        assert torch.equal(v, expected[k]), k
    if name == 'resnet101_v1c-e67eebb6.pth':
        assert 'stem.0.weight' in expected and 'conv1.weight' not in expected
    if name == 'deeplab_resnet101_imagenet_mmwsss.pth':
        assert not any(k.startswith(('backbone.', 'fc.')) for k in expected)


def test_standin_weights_keep_existing_files(standin_weights):
    """A second call keeps the files (real weights are never replaced)."""
    from mmwsss.datasets.format_trees import make_standin_weights
    path = standin_weights['resnet101_v1c-e67eebb6.pth']
    mtime = os.stat(path).st_mtime_ns
    again = make_standin_weights(osp.dirname(path))
    assert again == standin_weights and os.stat(path).st_mtime_ns == mtime


# ----------------------------------------------------------------------- tool
def test_make_format_trees_tool(tmp_path):
    out = tmp_path / 'formats'
    p = subprocess.run(
        [sys.executable, 'tools/misc/make_format_trees.py', '--out', str(out),
         '--convert', '--num-voc-train', '2', '--num-voc-val', '1',
         '--num-sbd-only', '2'],
        cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    voc = out / 'VOCdevkit' / 'VOC2012'
    assert 'voc_aug.py --voc-root' in p.stdout and 'train_aug.txt' in p.stdout
    assert len(os.listdir(voc / 'JPEGImages')) == 5
    assert len(read_split_ids(str(voc / 'ImageSets/Segmentation/train_aug.txt'))
               ) == 4  # 2 VOC train + 2 SBD-only; the VOC val id left out
    assert len(load_class_labels(str(voc / 'cls_labels.npy'))) == 5
    assert (out / 'benchmark_RELEASE/dataset/cls').is_dir()
    assert not (out / 'coco2014').exists()  # only with --coco


def test_standin_resnets_stay_finite_with_frozen_bn(standin_weights):
    """The stand-in ResNet-101 weights carry BN statistics of their own activations:
    with the configs' frozen BN and input scale the features stay finite and of
    moderate size (a fresh init's statistics let 101 layers overflow)."""
    import torch

    from mmwsss.models.backbones import DeepLabResNet
    net = DeepLabResNet(depth=101, init_cfg=dict(
        type='Pretrained',
        checkpoint=standin_weights['deeplab_resnet101_imagenet_mmwsss.pth']))
    net.init_weights()
    net.eval()
    x = torch.rand(1, 3, 97, 97) * 255 - 120  # BGR, mean subtracted
    with torch.no_grad():
        out = net(x)[-1]
    assert torch.isfinite(out).all()
    assert out.abs().max() < 1e4, out.abs().max()
