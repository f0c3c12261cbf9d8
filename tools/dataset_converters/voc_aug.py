"""Prepare PASCAL VOC 2012 + SBD ("VOC12-aug") for WSSS.

    python tools/dataset_converters/voc_aug.py \
        --voc-root data/VOCdevkit/VOC2012 --sbd-root data/benchmark_RELEASE/dataset \
        [--nproc 8] [--label-source xml|mask] [--prefer voc|sbd] [--overwrite]

Writes into --voc-root:

* ``SegmentationClassAug/<id>.png``: SBD ``cls/<id>.mat`` (GTcls.Segmentation)
  converted to palette PNGs, plus the VOC ``SegmentationClass`` masks (``--prefer voc``,
  the default, keeps the finer VOC mask where both exist);
* ``ImageSets/Segmentation/train_aug.txt``: (SBD train ∪ SBD val ∪ VOC train) − VOC val,
  10,582 ids on the full data; ``aug.txt``: train_aug − VOC train;
* ``cls_labels.npy``: {id: 20-dim multi-hot} for train_aug ∪ VOC train ∪ VOC val, from
  the VOC XML annotations (all objects, difficult included, as psa/irn) when present,
  else from the masks (``--label-source``).

Existing PNGs are kept unless --overwrite; every file is written atomically.
"""
import argparse
import os
import os.path as osp
import zlib
from functools import partial
from multiprocessing import Pool

import numpy as np

from mmwsss.utils.cli import ToolError, error_line, run_tool
from mmwsss.utils.io import (labels_from_mask, read_label_png, read_split_ids,
                             save_class_labels, save_png_atomic, voc_palette,
                             voc_xml_names, write_split_ids)

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')


def load_sbd_mask(path):
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError
    try:
        mat = loadmat(path)
        mask = mat['GTcls'][0]['Segmentation'][0]
    except (MatReadError, OSError, ValueError, KeyError, IndexError, TypeError,
            zlib.error) as e:  # truncated / foreign file, no GTcls.Segmentation
        raise ToolError(f'{path}: not an SBD class annotation (.mat with '
                        f'GTcls.Segmentation): {type(e).__name__}: '
                        f'{error_line(e)}. Extract benchmark.tgz again '
                        '(docs/datasets.md)') from e
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'{path}: GTcls.Segmentation is not a 2-D mask')
    if mask.max() > 20 and mask.max() != 255:
        raise ValueError(f'{path}: label {int(mask.max())} is beyond 20 classes')
    return mask.astype(np.uint8)


def convert_one(img_id, sbd_cls_dir, voc_seg_dir, out_dir, prefer, overwrite):
    out = osp.join(out_dir, img_id + '.png')
    if osp.exists(out) and not overwrite:
        return 'kept'
    voc_png = osp.join(voc_seg_dir, img_id + '.png')
    sbd_mat = osp.join(sbd_cls_dir, img_id + '.mat') if sbd_cls_dir else None
    has_voc = osp.isfile(voc_png)
    has_sbd = sbd_mat is not None and osp.isfile(sbd_mat)
    if has_voc and (prefer == 'voc' or not has_sbd):
        mask = read_label_png(voc_png)
    elif has_sbd:
        mask = load_sbd_mask(sbd_mat)
    else:
        raise FileNotFoundError(
            f'id {img_id}: neither {voc_png} nor {sbd_mat} exists')
    save_png_atomic(out, mask, voc_palette())
    return 'written'


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--voc-root', required=True,
                   help='VOCdevkit/VOC2012 folder (JPEGImages, SegmentationClass, '
                   'Annotations, ImageSets/Segmentation)')
    p.add_argument('--sbd-root', required=True,
                   help='SBD benchmark_RELEASE/dataset folder (cls/, train.txt, '
                   'val.txt)')
    p.add_argument('--out-dir', default=None,
                   help='mask folder (default: VOC_ROOT/SegmentationClassAug)')
    p.add_argument('--nproc', type=int, default=1)
    p.add_argument('--label-source', choices=['auto', 'xml', 'mask'],
                   default='auto')
    p.add_argument('--prefer', choices=['voc', 'sbd'], default='voc',
                   help='mask to keep for ids present in both VOC and SBD')
    p.add_argument('--overwrite', action='store_true')
    a = p.parse_args()

    for d, name in ((a.voc_root, '--voc-root'), (a.sbd_root, '--sbd-root')):
        if not osp.isdir(d):
            raise ToolError(f'{name} {d!r} does not exist (see docs/datasets.md)')
    seg_sets = osp.join(a.voc_root, 'ImageSets', 'Segmentation')
    voc_train = read_split_ids(osp.join(seg_sets, 'train.txt'))
    voc_val = read_split_ids(osp.join(seg_sets, 'val.txt'))
    sbd_ids = []
    for name in ('train.txt', 'val.txt'):
        sbd_ids += read_split_ids(osp.join(a.sbd_root, name))
    val_set = set(voc_val)
    train_aug = sorted(set(sbd_ids + voc_train) - val_set)
    aug = sorted(set(train_aug) - set(voc_train))

    out_dir = a.out_dir or osp.join(a.voc_root, 'SegmentationClassAug')
    all_ids = sorted(set(train_aug) | set(voc_train) | val_set)
    mask_ids = sorted(set(train_aug) | set(voc_train))
    sbd_cls_dir = osp.join(a.sbd_root, 'cls')
    voc_seg_dir = osp.join(a.voc_root, 'SegmentationClass')

    # Everything that can be checked is checked before anything is written (ids
    # without a mask, XML classes); the split lists and the class-label file are
    # written last, after every mask: a failed run leaves no half-converted root.
    sources = set(os.listdir(voc_seg_dir)) if osp.isdir(voc_seg_dir) else set()
    sbd_mats = set(os.listdir(sbd_cls_dir)) if osp.isdir(sbd_cls_dir) else set()
    no_mask = [i for i in mask_ids
               if i + '.png' not in sources and i + '.mat' not in sbd_mats]
    if no_mask:
        shown = ', '.join(no_mask[:5]) + (' ...' if len(no_mask) > 5 else '')
        raise ToolError(
            f'{len(no_mask)} id(s) of the VOC / SBD split lists have neither a VOC '
            f'mask in {voc_seg_dir} nor an SBD mask in {sbd_cls_dir}: {shown}. '
            'Extract both archives completely (docs/datasets.md); nothing was written')
    source = a.label_source
    ann_dir = osp.join(a.voc_root, 'Annotations')
    if source == 'auto':
        source = 'xml' if osp.isdir(ann_dir) else 'mask'
    labels = {}
    if source == 'xml':
        for img_id in all_ids:
            xml = osp.join(ann_dir, img_id + '.xml')
            vec = np.zeros(20, np.float32)
            for name in voc_xml_names(xml):
                if name not in VOC_CLASSES:
                    raise ToolError(f'{xml}: unknown class {name!r} (VOC classes: '
                                    f'{", ".join(VOC_CLASSES)}); nothing was written')
                vec[VOC_CLASSES.index(name)] = 1
            labels[img_id] = vec

    os.makedirs(out_dir, exist_ok=True)
    fn = partial(
        convert_one,
        sbd_cls_dir=sbd_cls_dir,
        voc_seg_dir=voc_seg_dir,
        out_dir=out_dir,
        prefer=a.prefer,
        overwrite=a.overwrite)
    if a.nproc > 1:
        with Pool(a.nproc) as pool:
            status = pool.map(fn, mask_ids, chunksize=64)
    else:
        status = [fn(i) for i in mask_ids]
    print(f'{out_dir}: {status.count("written")} masks written, '
          f'{status.count("kept")} kept')

    if source == 'mask':
        for img_id in all_ids:
            png = osp.join(out_dir, img_id + '.png')
            if not osp.isfile(png):
                png = osp.join(voc_seg_dir, img_id + '.png')
            labels[img_id] = labels_from_mask(read_label_png(png), 20, source=png)
    write_split_ids(osp.join(seg_sets, 'train_aug.txt'), train_aug)
    write_split_ids(osp.join(seg_sets, 'aug.txt'), aug)
    print(f'train_aug.txt: {len(train_aug)} ids (10,582 on the full data), '
          f'aug.txt: {len(aug)} ids')
    save_class_labels(osp.join(a.voc_root, 'cls_labels.npy'), labels)
    print(f'cls_labels.npy: {len(labels)} ids (labels from {source})')


if __name__ == '__main__':
    run_tool(main)
