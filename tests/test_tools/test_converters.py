import json
import os.path as osp
import subprocess

import numpy as np
from PIL import Image

from mmwsss.utils.io import (load_class_labels, read_split_ids,
                             save_png_atomic, voc_palette)
from tests.conftest import REPO, run_env


def _run(args):
    p = subprocess.run(args, cwd=REPO, env=run_env(), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def _voc_xml(names):
    objs = ''.join(f'<object><name>{n}</name><difficult>{i % 2}</difficult>'
                   '</object>' for i, n in enumerate(names))
    return f'<annotation>{objs}</annotation>'


def test_voc_aug(tmp_path, python_exe):
    from scipy.io import savemat
    voc = tmp_path / 'VOC2012'
    sbd = tmp_path / 'sbd'
    (voc / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (voc / 'Annotations').mkdir()
    (sbd / 'cls').mkdir(parents=True)
    # VOC: train a (in SBD too), b; val c (in SBD train too -> excluded)
    (voc / 'ImageSets/Segmentation/train.txt').write_text('a\nb\n')
    (voc / 'ImageSets/Segmentation/val.txt').write_text('c\n')
    (sbd / 'train.txt').write_text('a\nc\nd\n')
    (sbd / 'val.txt').write_text('e\n')
    masks = {
        'a': (1, 15), 'b': (7, ), 'c': (12, ), 'd': (3, 20), 'e': (9, )
    }
    names = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
             'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
             'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
    for i, cls in masks.items():
        m = np.zeros((6, 7), np.uint8)
        for j, c in enumerate(cls):
            m[j * 2:j * 2 + 2, :3] = c
        m[5, 6] = 255
        if i in ('a', 'b', 'c'):
            voc_m = m.copy()
            voc_m[0, 0] = 255  # VOC masks have boundary ignore pixels
            save_png_atomic(str(voc / 'SegmentationClass' / f'{i}.png'), voc_m,
                            voc_palette())
        if i in ('a', 'c', 'd', 'e'):
            savemat(str(sbd / 'cls' / f'{i}.mat'),
                    {'GTcls': {'Segmentation': m, 'Boundaries': np.zeros(1)}})
        (voc / 'Annotations' / f'{i}.xml').write_text(
            _voc_xml([names[c - 1] for c in cls]))
    _run([python_exe, 'tools/dataset_converters/voc_aug.py', '--voc-root',
          str(voc), '--sbd-root', str(sbd)])
    seg = voc / 'ImageSets' / 'Segmentation'
    assert read_split_ids(str(seg / 'train_aug.txt')) == ['a', 'b', 'd', 'e']
    assert read_split_ids(str(seg / 'aug.txt')) == ['d', 'e']
    out = voc / 'SegmentationClassAug'
    d = np.array(Image.open(out / 'd.png'))
    assert Image.open(out / 'd.png').mode == 'P'
    assert set(np.unique(d)) == {0, 3, 20, 255}
    a = np.array(Image.open(out / 'a.png'))
    assert a[0, 0] == 255  # VOC mask preferred where both exist
    labels = load_class_labels(str(voc / 'cls_labels.npy'))
    assert len(labels) == 5
    for i, cls in masks.items():
        expect = np.zeros(20, np.float32)
        expect[np.array(cls) - 1] = 1
        np.testing.assert_array_equal(labels[i], expect)
    # labels from masks agree with labels from XML
    _run([python_exe, 'tools/dataset_converters/voc_aug.py', '--voc-root',
          str(voc), '--sbd-root', str(sbd), '--label-source', 'mask'])
    labels_m = load_class_labels(str(voc / 'cls_labels.npy'))
    for i in masks:
        np.testing.assert_array_equal(labels_m[i], labels[i])


def _rle_encode_string(mask):
    """COCO compressed RLE (column-major), as pycocotools' rleToString."""
    flat = mask.T.flatten()
    counts, prev, run = [], 0, 0
    for v in flat:
        if v != prev:
            counts.append(run)
            run, prev = 0, v
        run += 1
    counts.append(run)
    s = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1f
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            s.append(chr(c + 48))
    return ''.join(s)


def test_coco_wsss(tmp_path, python_exe):
    root = tmp_path / 'coco'
    (root / 'annotations').mkdir(parents=True)
    cats = [dict(id=i, name=f'c{i}') for i in range(1, 91) if i not in (
        12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    assert len(cats) == 80
    crowd = np.zeros((10, 12), np.uint8)
    crowd[6:9, 1:5] = 1
    images = [
        dict(id=1, file_name='COCO_train2014_000000000001.jpg', height=10,
             width=12),
        dict(id=2, file_name='COCO_train2014_000000000002.jpg', height=10,
             width=12),
        dict(id=3, file_name='COCO_train2014_000000000003.jpg', height=10,
             width=12),
    ]
    anns = [
        # big box of category 1 (label 1) and a small one of category 90 (label 80)
        dict(id=1, image_id=1, category_id=1, iscrowd=0, area=48.,
             segmentation=[[0, 0, 8, 0, 8, 6, 0, 6]]),
        dict(id=2, image_id=1, category_id=90, iscrowd=0, area=4.,
             segmentation=[[2, 2, 4, 2, 4, 4, 2, 4]]),
        dict(id=3, image_id=2, category_id=13, iscrowd=1, area=12.,
             segmentation=dict(size=[10, 12], counts=_rle_encode_string(crowd))),
    ]
    (root / 'annotations' / 'instances_train2014.json').write_text(
        json.dumps(dict(images=images, annotations=anns, categories=cats)))
    _run([python_exe, 'tools/dataset_converters/coco_wsss.py', '--coco-root',
          str(root), '--splits', 'train2014'])
    ids = read_split_ids(str(root / 'ImageSets' / 'train.txt'))
    assert ids == ['COCO_train2014_000000000001', 'COCO_train2014_000000000002']
    m1 = np.array(Image.open(
        root / 'SegmentationClass/train2014/COCO_train2014_000000000001.png'))
    assert m1.shape == (10, 12)
    assert m1[3, 3] == 80 and m1[1, 6] == 1 and m1[9, 11] == 0
    m2 = np.array(Image.open(
        root / 'SegmentationClass/train2014/COCO_train2014_000000000002.png'))
    label_12 = [c['id'] for c in cats].index(13) + 1
    np.testing.assert_array_equal(m2, crowd * label_12)
    labels = load_class_labels(str(root / 'cls_labels_coco.npy'))
    assert labels.num_classes == 80 and len(labels) == 2
    assert np.nonzero(labels['COCO_train2014_000000000001'])[0].tolist() == [0, 79]
    # crowd -> ignore
    _run([python_exe, 'tools/dataset_converters/coco_wsss.py', '--coco-root',
          str(root), '--splits', 'train2014', '--crowd', 'ignore',
          '--overwrite'])
    m2 = np.array(Image.open(
        root / 'SegmentationClass/train2014/COCO_train2014_000000000002.png'))
    np.testing.assert_array_equal(m2, crowd * 255)
