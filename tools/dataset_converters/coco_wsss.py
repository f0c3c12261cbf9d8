"""Prepare MS-COCO 2014 for WSSS: class-label file + semantic PNGs (81 labels).

    python tools/dataset_converters/coco_wsss.py --coco-root data/coco2014 \
        [--splits train2014 val2014] [--nproc 8] [--crowd class|ignore] \
        [--keep-empty] [--overwrite]

Reads ``COCO_ROOT/annotations/instances_<split>.json`` and writes into --coco-root:

* ``SegmentationClass/<split>/<id>.png``: 0 = background, 1..80 = the COCO categories in
  increasing category-id order, 255 = ignore (crowd regions with ``--crowd ignore``).
  Instances are painted largest first so smaller objects stay visible;
* ``ImageSets/{train,val}.txt``: the ids (file stems) of images with at least one
  object (all images with ``--keep-empty``);
* ``cls_labels_coco.npy``: {id: 80-dim multi-hot} over all converted splits, from the
  categories of all annotations of the image.

Polygons are rasterised with OpenCV and RLE (crowd) masks decoded here, so pycocotools
is not needed. Existing PNGs are kept unless --overwrite; files are written atomically.
"""
import argparse
import json
import os
import os.path as osp
from functools import partial
from multiprocessing import Pool

import cv2
import numpy as np

from mmwsss.utils.cli import ToolError, run_tool
from mmwsss.utils.io import (save_class_labels, save_png_atomic, voc_palette,
                             write_split_ids)


def rle_counts_from_string(s):
    """Decode COCO's compressed RLE string (LEB128-like, see maskApi.c)."""
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_decode(rle, h, w):
    counts = rle['counts']
    if isinstance(counts, (str, bytes)):
        counts = rle_counts_from_string(
            counts.decode() if isinstance(counts, bytes) else counts)
    flat = np.zeros(h * w, np.uint8)
    pos, val = 0, 0
    for c in counts:
        if val:
            flat[pos:pos + c] = 1
        pos += c
        val ^= 1
    return flat.reshape(w, h).T  # column-major


def ann_mask(ann, h, w):
    seg = ann['segmentation']
    if isinstance(seg, list):
        m = np.zeros((h, w), np.uint8)
        polys = [
            np.round(np.asarray(p, np.float64).reshape(-1, 2)).astype(np.int32)
            for p in seg if len(p) >= 6
        ]
        if polys:
            cv2.fillPoly(m, polys, 1)
        return m.astype(bool)
    if isinstance(seg, dict):
        return rle_decode(seg, h, w).astype(bool)
    raise ValueError(f"annotation {ann.get('id')}: unknown segmentation format")


def convert_image(item, out_dir, crowd, overwrite):
    img_id, h, w, anns = item
    out = osp.join(out_dir, img_id + '.png')
    if osp.exists(out) and not overwrite:
        return
    label = np.zeros((h, w), np.uint8)
    for ann in sorted(anns, key=lambda a: -a['area']):
        m = ann_mask(ann, h, w)
        if ann.get('iscrowd', 0) and crowd == 'ignore':
            label[m & (label == 0)] = 255
        else:
            label[m] = ann['label']
    save_png_atomic(out, label, voc_palette())


IMAGE_KEYS = ('id', 'file_name', 'height', 'width')
ANN_KEYS = ('id', 'image_id', 'category_id', 'segmentation')


def load_split(ann_file: str, keep_empty: bool):
    """Read and check one ``instances_<split>.json``; returns ``(items, labels)``.

    Every problem names the file (and the entry): malformed JSON, missing keys,
    unknown images or categories. Nothing is written here."""
    if not osp.isfile(ann_file):
        raise ToolError(f'{ann_file} does not exist: download the COCO 2014 '
                        'annotations into COCO_ROOT/annotations (docs/datasets.md)')
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ToolError(f'{ann_file}: not valid JSON ({e}); download the file '
                        'again') from e
    if not isinstance(coco, dict):
        raise ToolError(f'{ann_file}: expected a COCO instances object')
    missing = [k for k in ('images', 'annotations', 'categories') if k not in coco]
    if missing:
        raise ToolError(f'{ann_file}: missing top-level key(s) {missing}: not a '
                        'COCO instances file')

    def check(entries, keys, what):
        for n, entry in enumerate(entries):
            lack = [k for k in keys if k not in entry]
            if lack:
                raise ToolError(f'{ann_file}: {what} #{n} '
                                f'(id {entry.get("id", "?")}) lacks {lack}')

    check(coco['categories'], ('id', ), 'category')
    check(coco['images'], IMAGE_KEYS, 'image')
    check(coco['annotations'], ANN_KEYS, 'annotation')
    cats = sorted(c['id'] for c in coco['categories'])
    if len(cats) != 80:
        raise ToolError(f'{ann_file}: expected 80 categories, found {len(cats)}')
    cat2label = {c: i + 1 for i, c in enumerate(cats)}
    per_image = {im['id']: [] for im in coco['images']}
    for ann in coco['annotations']:
        if ann['image_id'] not in per_image:
            raise ToolError(f"{ann_file}: annotation {ann['id']} refers to unknown "
                            f"image {ann['image_id']}")
        if ann['category_id'] not in cat2label:
            raise ToolError(f"{ann_file}: annotation {ann['id']} has unknown "
                            f"category {ann['category_id']}")
        ann = dict(ann, label=cat2label[ann['category_id']])
        per_image[ann['image_id']].append(ann)
    items, labels = [], {}
    for im in sorted(coco['images'], key=lambda x: x['file_name']):
        anns = per_image[im['id']]
        if not anns and not keep_empty:
            continue
        img_id = osp.splitext(im['file_name'])[0]
        items.append((img_id, im['height'], im['width'], anns))
        vec = np.zeros(80, np.float32)
        for ann in anns:
            vec[ann['label'] - 1] = 1
        labels[img_id] = vec
    return items, labels


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--coco-root', required=True)
    p.add_argument('--splits', nargs='+', default=['train2014', 'val2014'])
    p.add_argument('--nproc', type=int, default=1)
    p.add_argument('--crowd', choices=['class', 'ignore'], default='class')
    p.add_argument('--keep-empty', action='store_true',
                   help='also list images without any object')
    p.add_argument('--overwrite', action='store_true')
    a = p.parse_args()

    # every split is read and checked before anything is written: a bad file
    # leaves no half-converted root
    splits = {
        split: load_split(
            osp.join(a.coco_root, 'annotations', f'instances_{split}.json'),
            a.keep_empty)
        for split in a.splits
    }
    labels = {}
    for split, (items, split_labels) in splits.items():
        labels.update(split_labels)
        ids = [it[0] for it in items]
        out_dir = osp.join(a.coco_root, 'SegmentationClass', split)
        os.makedirs(out_dir, exist_ok=True)
        fn = partial(
            convert_image, out_dir=out_dir, crowd=a.crowd,
            overwrite=a.overwrite)
        if a.nproc > 1:
            with Pool(a.nproc) as pool:
                pool.map(fn, items, chunksize=16)
        else:
            for it in items:
                fn(it)
        list_name = split.replace('2014', '') + '.txt'
        write_split_ids(osp.join(a.coco_root, 'ImageSets', list_name), ids)
        print(f'{split}: {len(ids)} images -> {out_dir}, '
              f'ImageSets/{list_name}')
    save_class_labels(osp.join(a.coco_root, 'cls_labels_coco.npy'), labels)
    print(f'cls_labels_coco.npy: {len(labels)} ids')


if __name__ == '__main__':
    run_tool(main)
