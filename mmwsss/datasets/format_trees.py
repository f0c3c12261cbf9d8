"""Small datasets in the exact on-disk formats of the official archives, for tests.

The configs under ``configs/`` read PASCAL VOC 2012, SBD and MS-COCO 2014 as a user has
them after extracting the official archives and running the converters of
``tools/dataset_converters/``. The generators here write a *small* tree in exactly those
formats -- real VOC image sizes, palette masks with the 255 boundary band, VOC XML with
difficult objects, float boxes and person parts, SBD ``.mat`` structs, COCO 2014 JSON with
polygons and uncompressed-RLE crowd annotations -- so that tests can run the real
converters and then the real dataset configs on them. :func:`make_standin_weights` writes
the ImageNet weight files the configs name, from randomly initialised (seeded) models.

Layout of :func:`make_voc_format_tree` under ``root``::

    VOCdevkit/VOC2012/
      JPEGImages/<id>.jpg                 every id (VOC seg train/val and SBD-only)
      Annotations/<id>.xml                every id
      SegmentationClass/<id>.png          VOC train + val ids: palette, 0..20, 255 band
      SaliencyDSS/<id>.png                every id, 8-bit grey (``saliency=True``)
      ImageSets/Segmentation/{train,val,trainval}.txt
    benchmark_RELEASE/dataset/
      cls/<id>.mat   inst/<id>.mat   img/<id>.jpg    SBD ids
      train.txt  val.txt

Layout of :func:`make_coco_format_tree` under ``root``::

    train2014/COCO_train2014_<12 digits>.jpg   val2014/COCO_val2014_<12 digits>.jpg
    annotations/instances_{train,val}2014.json

Nothing here is meant for training: the pictures are coloured shapes, and the weights
are random. See docs/datasets.md ("Format trees for testing").
"""
import contextlib
import importlib.util
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmwsss.utils.io import (atomic_write, save_jpg_atomic, save_png_atomic,
                             voc_palette, write_split_ids)

__all__ = [
    'VOC_CLASSES', 'VOC_IMAGE_SIZES', 'COCO_CATEGORIES', 'COCO_IMAGE_SIZES',
    'STANDIN_WEIGHT_FILES', 'make_voc_format_tree', 'make_coco_format_tree',
    'make_standin_weights'
]

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')
PERSON = VOC_CLASSES.index('person') + 1  # segmentation label 15

# (width, height) of real VOC 2012 images (e.g. 2007_000032 is 500x281, 2007_000033
# 500x366, 2007_000039 500x375); the 127x500 one is the narrowest kind VOC has.
VOC_IMAGE_SIZES = ((500, 375), (375, 500), (500, 333), (127, 500), (500, 281),
                   (500, 366), (334, 500))
# (width, height) of common COCO 2014 images.
COCO_IMAGE_SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (612, 612),
                    (640, 360))

# The 80 COCO categories: (id, name, supercategory), with the real ids (1..90, ten
# unused: 12, 26, 29, 30, 45, 66, 68, 69, 71, 83).
COCO_CATEGORIES = (
    (1, 'person', 'person'), (2, 'bicycle', 'vehicle'), (3, 'car', 'vehicle'),
    (4, 'motorcycle', 'vehicle'), (5, 'airplane', 'vehicle'),
    (6, 'bus', 'vehicle'), (7, 'train', 'vehicle'), (8, 'truck', 'vehicle'),
    (9, 'boat', 'vehicle'), (10, 'traffic light', 'outdoor'),
    (11, 'fire hydrant', 'outdoor'), (13, 'stop sign', 'outdoor'),
    (14, 'parking meter', 'outdoor'), (15, 'bench', 'outdoor'),
    (16, 'bird', 'animal'), (17, 'cat', 'animal'), (18, 'dog', 'animal'),
    (19, 'horse', 'animal'), (20, 'sheep', 'animal'), (21, 'cow', 'animal'),
    (22, 'elephant', 'animal'), (23, 'bear', 'animal'),
    (24, 'zebra', 'animal'), (25, 'giraffe', 'animal'),
    (27, 'backpack', 'accessory'), (28, 'umbrella', 'accessory'),
    (31, 'handbag', 'accessory'), (32, 'tie', 'accessory'),
    (33, 'suitcase', 'accessory'), (34, 'frisbee', 'sports'),
    (35, 'skis', 'sports'), (36, 'snowboard', 'sports'),
    (37, 'sports ball', 'sports'), (38, 'kite', 'sports'),
    (39, 'baseball bat', 'sports'), (40, 'baseball glove', 'sports'),
    (41, 'skateboard', 'sports'), (42, 'surfboard', 'sports'),
    (43, 'tennis racket', 'sports'), (44, 'bottle', 'kitchen'),
    (46, 'wine glass', 'kitchen'), (47, 'cup', 'kitchen'),
    (48, 'fork', 'kitchen'), (49, 'knife', 'kitchen'),
    (50, 'spoon', 'kitchen'), (51, 'bowl', 'kitchen'),
    (52, 'banana', 'food'), (53, 'apple', 'food'), (54, 'sandwich', 'food'),
    (55, 'orange', 'food'), (56, 'broccoli', 'food'), (57, 'carrot', 'food'),
    (58, 'hot dog', 'food'), (59, 'pizza', 'food'), (60, 'donut', 'food'),
    (61, 'cake', 'food'), (62, 'chair', 'furniture'),
    (63, 'couch', 'furniture'), (64, 'potted plant', 'furniture'),
    (65, 'bed', 'furniture'), (67, 'dining table', 'furniture'),
    (70, 'toilet', 'furniture'), (72, 'tv', 'electronic'),
    (73, 'laptop', 'electronic'), (74, 'mouse', 'electronic'),
    (75, 'remote', 'electronic'), (76, 'keyboard', 'electronic'),
    (77, 'cell phone', 'electronic'), (78, 'microwave', 'appliance'),
    (79, 'oven', 'appliance'), (80, 'toaster', 'appliance'),
    (81, 'sink', 'appliance'), (82, 'refrigerator', 'appliance'),
    (84, 'book', 'indoor'), (85, 'clock', 'indoor'), (86, 'vase', 'indoor'),
    (87, 'scissors', 'indoor'), (88, 'teddy bear', 'indoor'),
    (89, 'hair drier', 'indoor'), (90, 'toothbrush', 'indoor'))

# The file names docs/getting_started.md tells users to put under data/pretrained/.
STANDIN_WEIGHT_FILES = ('vgg16-397923af.pth',
                        'deeplab_resnet101_imagenet_mmwsss.pth',
                        'resnet101_v1c-e67eebb6.pth',
                        'resnet38d_ilsvrc_mmwsss.pth',
                        'resnet101-5d3b4d8f.pth')

_POSES = ('Unspecified', 'Frontal', 'Left', 'Right', 'Rear')
_BAND_WIDTH = 5  # width of the void (255) band along VOC object boundaries


# --------------------------------------------------------------------- drawing
def _class_colours(n: int, seed: int) -> np.ndarray:
    """One distinct, saturated RGB colour per class (index 0 unused)."""
    rng = np.random.RandomState(seed + 7919)
    hues = (np.arange(n) * 0.61803398875 + rng.rand()) % 1.0
    hsv = np.stack([hues * 180, np.full(n, 200), np.full(n, 210)],
                   1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _background(rng: np.random.RandomState, w: int, h: int) -> np.ndarray:
    """A smooth colour gradient with low-frequency blotches and pixel noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0 = rng.uniform(40, 200, 3)
    c1 = rng.uniform(40, 200, 3)
    t = (xx / max(w - 1, 1) * rng.uniform(0.2, 1.0) +
         yy / max(h - 1, 1) * rng.uniform(0.2, 1.0))
    t /= max(float(t.max()), 1e-6)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    small = rng.uniform(-30, 30, (max(h // 40, 2), max(w // 40, 2), 3))
    img += cv2.resize(small.astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, img.shape)
    return img


def _random_shape(rng: np.random.RandomState, w: int, h: int) -> np.ndarray:
    """A filled ellipse or star-shaped polygon as an (h, w) bool mask; it may
    extend past the image border (truncated objects)."""
    ax = rng.uniform(0.18, 0.42) * w
    ay = rng.uniform(0.18, 0.42) * h
    ax, ay = max(ax, 18.0), max(ay, 18.0)
    cx = rng.uniform(0.2, 0.8) * w
    cy = rng.uniform(0.2, 0.8) * h
    m = np.zeros((h, w), np.uint8)
    if rng.rand() < 0.5:
        cv2.ellipse(m, (int(round(cx)), int(round(cy))),
                    (int(round(ax)), int(round(ay))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        n = rng.randint(5, 12)
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.6, 1.0, n)
        pts = np.stack([cx + np.cos(ang) * rad * ax, cy + np.sin(ang) * rad * ay],
                       1)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m.astype(bool)


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray,
           rng: np.random.RandomState) -> None:
    """Fill ``mask`` with ``colour``, a little shading and noise (in place)."""
    h, w = mask.shape
    shade = cv2.resize(
        rng.uniform(-25, 25, (max(h // 60, 2), max(w // 60, 2))).astype(np.float32),
        (w, h), interpolation=cv2.INTER_LINEAR)
    obj = colour[None, None] + shade[..., None] + rng.normal(0, 8, (h, w, 3))
    img[mask] = obj[mask]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _instance_layout(rng: np.random.RandomState, w: int, h: int,
                     classes: Sequence[int],
                     min_visible: int = 400) -> Optional[Tuple[np.ndarray, list]]:
    """``(instance map, shapes)``: 0 = background, i = i-th object, every object
    at least half visible and ``min_visible`` pixels after the void band; the
    drawn (unoccluded) shape masks. None if the random draw failed."""
    inst = np.zeros((h, w), np.int32)
    shapes = []
    for i in range(len(classes)):
        m = _random_shape(rng, w, h)
        inst[m] = i + 1
        shapes.append(m)
    band = _void_band(inst)
    for i, m in enumerate(shapes):
        vis = inst == i + 1
        if vis.sum() < 0.5 * m.sum() or (vis & ~band).sum() < min_visible:
            return None
    return inst, shapes


def _void_band(inst: np.ndarray, width: int = _BAND_WIDTH) -> np.ndarray:
    """Pixels within ``width // 2`` of a boundary between two regions of ``inst``
    (object/background and object/object): the VOC "void" band."""
    edge = np.zeros(inst.shape, np.uint8)
    edge[:, :-1] |= (inst[:, :-1] != inst[:, 1:]).astype(np.uint8)
    edge[:-1, :] |= (inst[:-1, :] != inst[1:, :]).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    return cv2.dilate(edge, k).astype(bool)


def _class_boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel inner boundary of a binary mask (SBD ``Boundaries``)."""
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)


def _saliency(rng: np.random.RandomState, fg: np.ndarray) -> np.ndarray:
    """A DSS-like saliency map: high on the objects, blurred, a little noise."""
    h, w = fg.shape
    sal = fg.astype(np.float32) * rng.uniform(200, 245)
    sigma = max(2.0, 0.02 * max(h, w))
    sal = cv2.GaussianBlur(sal, (0, 0), sigma)
    sal += rng.normal(0, 4, sal.shape)
    return _to_uint8(sal)


# ------------------------------------------------------------------------- VOC
def _voc_ids(rng: np.random.RandomState, n: int, years: Sequence[int],
             taken: set) -> List[str]:
    out = []
    while len(out) < n:
        year = int(years[len(out) % len(years)])
        num = int(rng.randint(32, 9960 if year == 2007 else 5200))
        img_id = f'{year}_{num:06d}'
        if img_id not in taken:
            taken.add(img_id)
            out.append(img_id)
    return out


def _fmt_coord(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f'{v:.1f}'


def _voc_xml(img_id: str, w: int, h: int, segmented: bool,
             objects: List[dict]) -> str:
    """A VOC 2012 annotation file, laid out as the official ones (tabs, no XML
    declaration; 2008+ files have ``<occluded>`` and ``<difficult>`` after the
    box)."""
    year = img_id[:4]
    t = '\t'
    lines = [
        '<annotation>', f'{t}<folder>VOC2012</folder>',
        f'{t}<filename>{img_id}.jpg</filename>', f'{t}<source>',
        f'{t}{t}<database>The VOC{year} Database</database>',
        f'{t}{t}<annotation>PASCAL VOC{year}</annotation>',
        f'{t}{t}<image>flickr</image>', f'{t}</source>', f'{t}<size>',
        f'{t}{t}<width>{w}</width>', f'{t}{t}<height>{h}</height>',
        f'{t}{t}<depth>3</depth>', f'{t}</size>',
        f'{t}<segmented>{int(segmented)}</segmented>'
    ]

    def box(b, indent):
        names = ('xmin', 'ymin', 'xmax', 'ymax')
        return ([f'{indent}<bndbox>'] +
                [f'{indent}{t}<{k}>{_fmt_coord(v)}</{k}>'
                 for k, v in zip(names, b)] + [f'{indent}</bndbox>'])

    new_style = year != '2007'
    for obj in objects:
        lines += [f'{t}<object>', f"{t}{t}<name>{obj['name']}</name>",
                  f"{t}{t}<pose>{obj['pose']}</pose>",
                  f"{t}{t}<truncated>{obj['truncated']}</truncated>"]
        if new_style:
            lines.append(f"{t}{t}<occluded>{obj['occluded']}</occluded>")
        else:
            lines.append(f"{t}{t}<difficult>{obj['difficult']}</difficult>")
        lines += box(obj['bbox'], t * 2)
        if new_style:
            lines.append(f"{t}{t}<difficult>{obj['difficult']}</difficult>")
        for part in obj.get('parts', []):
            lines += [f'{t}{t}<part>', f"{t}{t}{t}<name>{part['name']}</name>"]
            lines += box(part['bbox'], t * 3)
            lines.append(f'{t}{t}</part>')
        lines.append(f'{t}</object>')
    lines.append('</annotation>')
    return '\n'.join(lines) + '\n'


def _bbox(mask: np.ndarray) -> Tuple[int, int, int, int]:
    """VOC box of a mask: 1-based inclusive pixel coordinates."""
    ys, xs = np.nonzero(mask)
    return (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1,
            int(ys.max()) + 1)


def _person_parts(rng: np.random.RandomState, bbox, with_hands: bool) -> list:
    x0, y0, x1, y1 = bbox
    bw, bh = x1 - x0, y1 - y0
    hw = max(2, int(bw * 0.3))
    hx = int(x0 + (bw - hw) / 2)
    parts = [dict(name='head',
                  bbox=(hx, y0, min(x1, hx + hw), y0 + max(2, int(bh * 0.2))))]
    if with_hands:
        hy = int(y0 + bh * 0.45)
        s = max(2, int(min(bw, bh) * 0.1))
        parts.append(dict(name='hand', bbox=(x0, hy, x0 + s, hy + s)))
        parts.append(dict(name='hand', bbox=(x1 - s, hy, x1, hy + s)))
    return parts


def _sbd_cell(items: List[np.ndarray]) -> np.ndarray:
    """A MATLAB cell column of sparse logical matrices (SBD ``Boundaries``)."""
    from scipy import sparse
    cell = np.empty((len(items), 1), dtype=object)
    for i, b in enumerate(items):
        cell[i, 0] = sparse.csc_matrix(b.astype(bool))
    return cell


def _write_sbd_mats(sbd: str, img_id: str, label: np.ndarray,
                    inst: np.ndarray, obj_classes: List[int]) -> None:
    """``cls/<id>.mat`` (struct ``GTcls``) and ``inst/<id>.mat`` (``GTinst``), the
    MATLAB v5 files of SBD's benchmark_RELEASE/dataset."""
    from scipy.io import savemat
    present = sorted(int(c) for c in np.unique(label) if c != 0)
    gtcls = {
        'Segmentation': label.astype(np.uint8),
        'Boundaries': _sbd_cell([_class_boundary(label == c)
                                 for c in range(1, 21)]),
        'CategoriesPresent': np.array(present, np.uint8).reshape(-1, 1),
    }
    n = int(inst.max())
    gtinst = {
        'Segmentation': inst.astype(np.uint8),
        'Boundaries': _sbd_cell([_class_boundary(inst == i)
                                 for i in range(1, n + 1)]),
        'Categories': np.array(obj_classes, np.uint8).reshape(-1, 1),
    }
    for sub, name, struct in (('cls', 'GTcls', gtcls),
                              ('inst', 'GTinst', gtinst)):
        path = osp.join(sbd, sub, img_id + '.mat')
        with atomic_write(path) as f:
            savemat(f, {name: struct}, do_compression=True, oned_as='column')


def make_voc_format_tree(root: str,
                         seed: int = 0,
                         num_voc_train: int = 4,
                         num_voc_val: int = 3,
                         num_sbd_only: int = 4,
                         saliency: bool = True) -> Dict:
    """Write a small VOC 2012 + SBD tree as extracted from the official archives.

    Ids: ``num_voc_train`` / ``num_voc_val`` VOC segmentation ids (JPEG, XML, palette
    mask) and ``num_sbd_only`` ids that only SBD segments (JPEG, XML, no VOC mask).
    SBD (``benchmark_RELEASE/dataset``) covers the SBD-only ids, about half of the VOC
    train ids and one VOC val id (in SBD ``train.txt``, as the real SBD train overlaps
    VOC val; ``voc_aug.py`` must leave it out of train_aug). VOC masks have a 255 band
    about 5 px wide along every object boundary; SBD masks have none.

    Every image has 1--3 objects (ellipses / polygons, one colour per class);
    masks, XML objects, SBD ``.mat`` files and saliency maps agree. The XML files
    include difficult objects, float box coordinates and ``person`` objects with
    ``<part>`` children (head, hands), as real VOC 2012 files do.

    Args:
        root (str): output folder (``VOCdevkit/`` and ``benchmark_RELEASE/`` go
            inside it). Existing files are overwritten; the output depends only
            on the arguments.
        seed (int): random seed.
        num_voc_train, num_voc_val, num_sbd_only (int): ids per group (>= 2, >= 1,
            >= 2).
        saliency (bool): also write ``VOC2012/SaliencyDSS/<id>.png``.

    Returns:
        dict: ``root``, ``voc_root`` (``.../VOCdevkit/VOC2012``), ``sbd_root``
        (``.../benchmark_RELEASE/dataset``), ``saliency_dir`` (or None), the id lists
        ``voc_train``, ``voc_val``, ``voc_trainval``, ``sbd_train``, ``sbd_val``,
        ``sbd_only``, ``all_ids``, ``train_aug`` (what ``voc_aug.py`` must write:
        (SBD train ∪ SBD val ∪ VOC train) − VOC val), ``sizes`` ({id: (w, h)}),
        ``objects`` ({id: [{'name', 'label', 'difficult', 'bbox', 'parts', ...}]})
        and ``labels`` ({id: sorted segmentation labels 1..20 of its objects}).
    """
    if num_voc_train < 2 or num_voc_val < 1 or num_sbd_only < 2:
        raise ValueError('make_voc_format_tree needs num_voc_train >= 2, '
                         'num_voc_val >= 1 and num_sbd_only >= 2')
    rng = np.random.RandomState(seed)
    root = osp.abspath(root)
    voc = osp.join(root, 'VOCdevkit', 'VOC2012')
    sbd = osp.join(root, 'benchmark_RELEASE', 'dataset')
    for d in ('JPEGImages', 'Annotations', 'SegmentationClass',
              osp.join('ImageSets', 'Segmentation')):
        os.makedirs(osp.join(voc, d), exist_ok=True)
    for d in ('cls', 'inst', 'img'):
        os.makedirs(osp.join(sbd, d), exist_ok=True)
    sal_dir = osp.join(voc, 'SaliencyDSS') if saliency else None

    taken: set = set()
    voc_train = sorted(_voc_ids(rng, num_voc_train, (2007, 2008, 2009, 2010,
                                                     2011), taken))
    voc_val = sorted(_voc_ids(rng, num_voc_val, (2007, 2009, 2011, 2008),
                              taken))
    sbd_only = sorted(_voc_ids(rng, num_sbd_only, (2008, 2009, 2010, 2011),
                               taken))
    # SBD train: half the SBD-only ids, the first VOC train id and one VOC val id;
    # SBD val: the other SBD-only ids and the second VOC train id.
    half = (num_sbd_only + 1) // 2
    sbd_train = sorted(sbd_only[:half] + [voc_train[0], voc_val[0]])
    sbd_val = sorted(sbd_only[half:] + [voc_train[1]])
    sbd_ids = set(sbd_train) | set(sbd_val)
    voc_seg = set(voc_train) | set(voc_val)
    all_ids = sorted(voc_seg | set(sbd_only))

    colours = _class_colours(21, seed)
    palette = voc_palette()
    # objects that must exist somewhere: a person with parts (first VOC train id,
    # first SBD-only id) and a difficult object (second VOC train id, last VOC val
    # id); every third object gets float box coordinates
    forced_person = {voc_train[0], sbd_only[0]}
    forced_difficult = {voc_train[1], voc_val[-1]}
    sizes, objects, labels = {}, {}, {}
    obj_counter = 0
    for k, img_id in enumerate(all_ids):
        w, h = VOC_IMAGE_SIZES[k % len(VOC_IMAGE_SIZES)]
        n_obj = int(rng.randint(1, 4))
        classes = [int(c) for c in rng.randint(1, 21, n_obj)]
        if img_id in forced_person:
            classes[0] = PERSON
        layout, tries = None, 0
        while layout is None:
            tries += 1
            if tries % 20 == 0 and len(classes) > 1:
                classes = classes[:-1]  # too crowded for this image size
            layout = _instance_layout(rng, w, h, classes)
        inst, shapes = layout
        label = np.zeros((h, w), np.uint8)
        for i, c in enumerate(classes):
            label[inst == i + 1] = c
        img = _background(rng, w, h)
        for i, c in enumerate(classes):
            _paint(img, inst == i + 1, colours[c], rng)
        img = cv2.GaussianBlur(_to_uint8(img), (3, 3), 0)  # soft object edges
        save_jpg_atomic(osp.join(voc, 'JPEGImages', img_id + '.jpg'), img,
                        quality=90)

        objs = []
        for i, c in enumerate(classes):
            vis = inst == i + 1
            bbox = _bbox(vis)
            truncated = int(bbox[0] == 1 or bbox[1] == 1 or bbox[2] == w
                            or bbox[3] == h)
            if obj_counter % 3 == 2:  # float coordinates, as some VOC 2012 files
                bbox = (bbox[0] - 0.5, bbox[1] - 0.5, float(bbox[2]),
                        float(bbox[3]))
            obj_counter += 1
            difficult = int(rng.rand() < 0.1)
            if img_id in forced_difficult and i == len(classes) - 1:
                difficult = 1
            obj = dict(
                name=VOC_CLASSES[c - 1], label=c, difficult=difficult,
                truncated=truncated,
                occluded=int(bool((shapes[i] & ~vis).any())),
                pose=_POSES[int(rng.randint(len(_POSES)))], bbox=bbox,
                parts=[])
            if c == PERSON and (img_id in forced_person or rng.rand() < 0.6):
                int_box = tuple(int(round(v)) for v in bbox)
                obj['parts'] = _person_parts(rng, int_box,
                                             with_hands=rng.rand() < 0.5)
            objs.append(obj)
        with atomic_write(osp.join(voc, 'Annotations', img_id + '.xml'),
                          'w') as f:
            f.write(_voc_xml(img_id, w, h, img_id in voc_seg, objs))

        if img_id in voc_seg:
            voc_mask = label.copy()
            voc_mask[_void_band(inst)] = 255
            save_png_atomic(
                osp.join(voc, 'SegmentationClass', img_id + '.png'), voc_mask,
                palette)
        if img_id in sbd_ids:
            _write_sbd_mats(sbd, img_id, label, inst, classes)
            shutil.copyfile(
                osp.join(voc, 'JPEGImages', img_id + '.jpg'),
                osp.join(sbd, 'img', img_id + '.jpg'))
        if sal_dir:
            save_png_atomic(osp.join(sal_dir, img_id + '.png'),
                            _saliency(rng, inst > 0))
        sizes[img_id] = (w, h)
        objects[img_id] = objs
        labels[img_id] = sorted(set(classes))

    seg_sets = osp.join(voc, 'ImageSets', 'Segmentation')
    write_split_ids(osp.join(seg_sets, 'train.txt'), voc_train)
    write_split_ids(osp.join(seg_sets, 'val.txt'), voc_val)
    write_split_ids(osp.join(seg_sets, 'trainval.txt'),
                    sorted(voc_train + voc_val))
    write_split_ids(osp.join(sbd, 'train.txt'), sbd_train)
    write_split_ids(osp.join(sbd, 'val.txt'), sbd_val)
    train_aug = sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) -
                       set(voc_val))
    return dict(
        root=root,
        voc_root=voc,
        sbd_root=sbd,
        saliency_dir=sal_dir,
        voc_train=voc_train,
        voc_val=voc_val,
        voc_trainval=sorted(voc_train + voc_val),
        sbd_train=sbd_train,
        sbd_val=sbd_val,
        sbd_only=sbd_only,
        all_ids=all_ids,
        train_aug=train_aug,
        sizes=sizes,
        objects=objects,
        labels=labels)


# ------------------------------------------------------------------------ COCO
def _rle_counts(mask: np.ndarray) -> List[int]:
    """COCO uncompressed RLE counts (column-major, starting with a 0-run)."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return [int(c) for c in counts]


def _polygon(rng: np.random.RandomState, w: int, h: int, cx: float, cy: float,
             rx: float, ry: float) -> List[float]:
    n = int(rng.randint(8, 17))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.65, 1.0, n)
    xs = np.clip(cx + np.cos(ang) * rad * rx, 0, w - 1)
    ys = np.clip(cy + np.sin(ang) * rad * ry, 0, h - 1)
    return [round(float(v), 2) for p in zip(xs, ys) for v in p]


def _poly_area(poly: List[float]) -> float:
    p = np.asarray(poly, np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _poly_mask(polys: List[List[float]], h: int, w: int) -> np.ndarray:
    """Rasterised as ``coco_wsss.py`` does (rounded vertices, cv2.fillPoly)."""
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [
        np.round(np.asarray(p, np.float64).reshape(-1, 2)).astype(np.int32)
        for p in polys
    ], 1)
    return m.astype(bool)


def make_coco_format_tree(root: str,
                          seed: int = 0,
                          num_train: int = 4,
                          num_val: int = 3) -> Dict:
    """Write a small MS-COCO 2014 tree as extracted from the official archives.

    ``train2014/`` and ``val2014/`` JPEGs of common COCO sizes named
    ``COCO_<split>_<12-digit id>.jpg``, and ``annotations/instances_<split>.json`` with
    the real top-level keys (``info``, ``images``, ``licenses``, ``annotations``,
    ``categories``), the 80 categories with their real ids (1..90) and names,
    polygon annotations (one with two polygons), one ``iscrowd=1`` annotation with an
    uncompressed RLE (``{'counts': [...], 'size': [h, w]}``, as COCO's crowd
    annotations), float ``area`` / ``bbox``, and one train image without any
    annotation (``coco_wsss.py`` leaves it out of ``ImageSets/train.txt``).

    Args:
        root (str): output folder (the ``--coco-root`` of the converter and the
            ``data_root`` of ``configs/_base_/datasets/coco14.py``).
        seed (int): random seed.
        num_train (int): train images (>= 3: one with a crowd, one empty).
        num_val (int): val images (>= 1).

    Returns:
        dict: ``root``, ``data_root`` (= root), ``ann_files`` ({split: json path}),
        ``images`` ({split: [file stems]}), ``empty_ids`` (stems without
        annotations), ``crowd_ids`` (stems with a crowd annotation), ``labels``
        ({stem: sorted labels 1..80 = category rank in increasing id order}),
        ``sizes`` ({stem: (w, h)}), ``cat2label`` ({category id: label}).
    """
    if num_train < 3 or num_val < 1:
        raise ValueError('make_coco_format_tree needs num_train >= 3 and '
                         'num_val >= 1')
    rng = np.random.RandomState(seed + 2014)
    root = osp.abspath(root)
    cat_ids = [c[0] for c in COCO_CATEGORIES]
    cat2label = {c: i + 1 for i, c in enumerate(sorted(cat_ids))}
    colours = _class_colours(81, seed)
    categories = [dict(supercategory=s, id=i, name=n)
                  for i, n, s in COCO_CATEGORIES]
    out = dict(root=root, data_root=root, ann_files={}, images={},
               empty_ids=[], crowd_ids=[], labels={}, sizes={},
               cat2label=cat2label)
    taken: set = set()
    ann_id = int(rng.randint(1000, 90000))
    size_k = 0
    for split, n_img in (('train2014', num_train), ('val2014', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, anns, stems = [], [], []
        for k in range(n_img):
            while True:
                img_num = int(rng.randint(9, 581929))
                if img_num not in taken:
                    taken.add(img_num)
                    break
            w, h = COCO_IMAGE_SIZES[size_k % len(COCO_IMAGE_SIZES)]
            size_k += 1
            file_name = f'COCO_{split}_{img_num:012d}.jpg'
            stem = file_name[:-4]
            empty = split == 'train2014' and k == n_img - 1
            crowd = split == 'train2014' and k == 1
            img_anns = []
            if not empty:
                n_obj = int(rng.randint(1, 4))
                for j in range(n_obj):
                    cat = 1 if (k == 0 and j == 0) else int(
                        cat_ids[rng.randint(len(cat_ids))])
                    rx = rng.uniform(0.1, 0.3) * w
                    ry = rng.uniform(0.1, 0.3) * h
                    cx = rng.uniform(0.25, 0.75) * w
                    cy = rng.uniform(0.25, 0.75) * h
                    polys = [_polygon(rng, w, h, cx, cy, rx, ry)]
                    if k == 0 and j == 0:  # an object in two pieces
                        polys.append(_polygon(rng, w, h, min(cx + rx * 1.6, w - 20),
                                              cy, rx * 0.3, ry * 0.3))
                    pts = np.concatenate(
                        [np.asarray(p).reshape(-1, 2) for p in polys])
                    x0, y0 = pts.min(0)
                    x1, y1 = pts.max(0)
                    img_anns.append(dict(
                        segmentation=polys,
                        area=round(sum(_poly_area(p) for p in polys), 4),
                        iscrowd=0,
                        image_id=img_num,
                        bbox=[round(float(x0), 2), round(float(y0), 2),
                              round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
                        category_id=cat))
                if crowd:  # a crowd of people along the bottom of the image
                    m = np.zeros((h, w), np.uint8)
                    for _ in range(4):
                        cv2.ellipse(
                            m, (int(rng.uniform(0.1, 0.9) * w), int(0.85 * h)),
                            (int(0.12 * w), int(0.1 * h)), 0, 0, 360, 1, -1)
                    ys, xs = np.nonzero(m)
                    img_anns.append(dict(
                        segmentation=dict(counts=_rle_counts(m), size=[h, w]),
                        area=int(m.sum()),
                        iscrowd=1,
                        image_id=img_num,
                        bbox=[float(xs.min()), float(ys.min()),
                              float(xs.max() - xs.min() + 1),
                              float(ys.max() - ys.min() + 1)],
                        category_id=1))
                    out['crowd_ids'].append(stem)
            # the picture: objects painted largest first, as the converter does
            img = _background(rng, w, h)
            for a in sorted(img_anns, key=lambda a: -a['area']):
                if a['iscrowd']:
                    from_rle = np.zeros(h * w, np.uint8)
                    pos, val = 0, 0
                    for c in a['segmentation']['counts']:
                        from_rle[pos:pos + c] = val
                        pos += c
                        val ^= 1
                    m = from_rle.reshape(w, h).T.astype(bool)
                else:
                    m = _poly_mask(a['segmentation'], h, w)
                _paint(img, m, colours[cat2label[a['category_id']]], rng)
            save_jpg_atomic(osp.join(root, split, file_name),
                            cv2.GaussianBlur(_to_uint8(img), (3, 3), 0),
                            quality=90)
            for a in img_anns:
                a['id'] = ann_id
                ann_id += int(rng.randint(1, 500))
                anns.append(a)
            images.append(dict(
                license=int(rng.randint(1, 9)),
                file_name=file_name,
                coco_url=f'http://images.cocodataset.org/{split}/{file_name}',
                height=h,
                width=w,
                date_captured='2013-11-{:02d} {:02d}:{:02d}:{:02d}'.format(
                    int(rng.randint(14, 25)), int(rng.randint(24)),
                    int(rng.randint(60)), int(rng.randint(60))),
                flickr_url=f'http://farm{int(rng.randint(1, 10))}.staticflickr'
                f'.com/{int(rng.randint(1000, 9000))}/{img_num}_standin.jpg',
                id=img_num))
            stems.append(stem)
            out['sizes'][stem] = (w, h)
            if empty:
                out['empty_ids'].append(stem)
            out['labels'][stem] = sorted(
                {cat2label[a['category_id']] for a in img_anns})
        coco = dict(
            info=dict(
                description='COCO 2014 Dataset (mmwsss stand-in)',
                url='http://cocodataset.org', version='1.0', year=2014,
                contributor='COCO Consortium',
                date_created='2017/09/01'),
            images=images,
            licenses=[dict(url='http://creativecommons.org/licenses/', id=i,
                           name=f'License {i}') for i in range(1, 9)],
            annotations=anns,
            categories=categories)
        ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
        with atomic_write(ann_file, 'w') as f:
            json.dump(coco, f)
        out['ann_files'][split] = ann_file
        out['images'][split] = sorted(stems)
    return out


# --------------------------------------------------------------------- weights
@contextlib.contextmanager
def _seeded(seed: int):
    import torch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _load_tool(rel_path: str):
    """Import a script of tools/ as a module (it is not a package)."""
    path = osp.join(REPO, rel_path)
    name = '_mmwsss_tool_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calibrate_batch_norm(model, input_scale: float, seed: int,
                          batches: int = 4, size: int = 128) -> None:
    """Give a randomly initialised network the BatchNorm statistics of its own
    activations, as trained weights have.

    The DeepLab configs freeze BN (running statistics in eval mode); with the
    statistics of a fresh init (mean 0, var 1) the activations of a ResNet-101 grow
    through its 33 blocks until the loss overflows. The running statistics are
    re-estimated (cumulative average) from random *image-like* inputs -- smooth
    random fields plus a little noise, at the scale the configs feed
    (``input_scale``: the std of the normalised input) -- so that frozen BN
    normalises pictures as it does with real ImageNet weights (statistics estimated
    on white noise leave features of pictures ~100x too large)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(batches):
            field = F.interpolate(torch.randn(2, 3, 8, 8, generator=gen),
                                  size=size, mode='bilinear', align_corners=False)
            noise = 0.1 * torch.randn(2, 3, size, size, generator=gen)
            model((field + noise) * input_scale)
    model.eval()


def make_standin_weights(out_dir: str,
                         seed: int = 0,
                         overwrite: bool = False,
                         names: Optional[Sequence[str]] = None
                         ) -> Dict[str, str]:
    """Write stand-in ImageNet weight files, in the formats the configs read, from
    randomly initialised (seeded) models: nothing is downloaded.

    * ``vgg16-397923af.pth``: ``torchvision.models.vgg16(weights=None).state_dict()``
      saved with ``torch.save`` -- the torchvision file, read directly by the VGG16
      configs (about 530 MB, as the real one);
    * ``deeplab_resnet101_imagenet_mmwsss.pth``: a torchvision ``resnet101`` state
      dict converted with the documented
      ``tools/model_converters/deeplab_resnet_to_mmwsss.py IN OUT --backbone-only``;
    * ``resnet101_v1c-e67eebb6.pth``: ``{'state_dict': ...}`` of MMSeg's
      ``ResNetV1c(depth=101)`` (deep stem ``stem.*``, ``layer1..4``; no classifier),
      the names of OpenMMLab's ``open-mmlab://resnet101_v1c`` file;
    * ``resnet38d_ilsvrc_mmwsss.pth``: mmwsss's ``ResNet38d`` (the EDAM configs'
      backbone) saved as the plain state dict with the official PSA / EDAM names
      (``conv1a.weight``, ``b2.bn_branch2a.weight``, ..., ``bn7.running_var``; no
      ``num_batches_tracked``), which is what PSA's ``convert_mxnet_to_torch`` +
      ``torch.save`` give for the MXNet ImageNet file, then converted with the
      documented ``tools/model_converters/resnet38d_to_mmwsss.py IN OUT`` (about
      420 MB; the intermediate file is removed);
    * ``resnet101-5d3b4d8f.pth``: ``torchvision.models.resnet101(weights=None,
      zero_init_residual=True).state_dict()`` saved with ``torch.save`` -- the
      torchvision file (``fc`` included), read directly by MMSeg's ``ResNet`` in the
      VWL configs (about 170 MB, as the real one).

    The ResNets' BatchNorm statistics are those of their own activations on random
    image-like inputs at the configs' input scale (:func:`_calibrate_batch_norm`):
    the configs freeze BN, and the statistics of a fresh init would let the
    activations of 101 layers overflow (ResNet-38d: RGB normalised by the ImageNet
    mean / std, as the EDAM configs feed it). The torchvision ResNet-101 starts with its
    residual branches' last BN at zero (``zero_init_residual=True``): a random
    101-layer network trained at the recipe's lr otherwise diverges in one step (NaN
    loss, which ``CheckInvalidLossHook`` stops), where real ImageNet weights are well
    conditioned.

    Existing files are kept unless ``overwrite`` (real weights are never replaced
    by accident). ``names`` (default: all of ``STANDIN_WEIGHT_FILES``) writes only
    those files (each file's content does not depend on the others).

    Returns:
        dict: {file name: path} for the files of ``names``.
    """
    import mmwsss  # noqa: F401  (compat shims before torchvision)
    import torch
    import torchvision

    out_dir = osp.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    names = STANDIN_WEIGHT_FILES if names is None else tuple(names)
    unknown = sorted(set(names) - set(STANDIN_WEIGHT_FILES))
    if unknown:
        raise ValueError(f'unknown stand-in weight files {unknown}; choose from '
                         f'{STANDIN_WEIGHT_FILES}')
    paths = {n: osp.join(out_dir, n) for n in names}

    def todo(name):
        return name in paths and (overwrite or not osp.isfile(paths[name]))

    if todo('vgg16-397923af.pth'):
        with _seeded(seed):
            state = torchvision.models.vgg16(weights=None).state_dict()
        with atomic_write(paths['vgg16-397923af.pth']) as f:
            torch.save(state, f)
        del state
    if todo('deeplab_resnet101_imagenet_mmwsss.pth'):
        with _seeded(seed + 1):
            net = torchvision.models.resnet101(weights=None,
                                               zero_init_residual=True)
        # the DeepLabV2 configs feed BGR with the mean subtracted, no std (~74)
        _calibrate_batch_norm(net, input_scale=74.0, seed=seed + 1)
        state = net.state_dict()
        del net
        fd, tmp = tempfile.mkstemp(prefix='.resnet101-torchvision.',
                                   suffix='.pth', dir=out_dir)
        os.close(fd)
        try:
            torch.save(state, tmp)
            tool = _load_tool(
                'tools/model_converters/deeplab_resnet_to_mmwsss.py')
            tool.main(
                [tmp, paths['deeplab_resnet101_imagenet_mmwsss.pth'],
                 '--backbone-only'])
        finally:
            with contextlib.suppress(OSError):
                os.remove(tmp)
    if todo('resnet101_v1c-e67eebb6.pth'):
        from mmseg.models.backbones import ResNetV1c
        with _seeded(seed + 2):
            backbone = ResNetV1c(depth=101)
            backbone.init_weights()
        # RGB normalised by the ImageNet mean / std
        _calibrate_batch_norm(backbone, input_scale=1.0, seed=seed + 2)
        with atomic_write(paths['resnet101_v1c-e67eebb6.pth']) as f:
            torch.save({'state_dict': backbone.state_dict()}, f)
        del backbone
    if todo('resnet38d_ilsvrc_mmwsss.pth'):
        from mmwsss.models.backbones import ResNet38d
        with _seeded(seed + 3):
            net = ResNet38d()
        # RGB normalised by the ImageNet mean / std (configs/edam/)
        _calibrate_batch_norm(net, input_scale=1.0, seed=seed + 3)
        # the PSA / EDAM names (ResNet38d keeps them), as convert_mxnet_to_torch
        # returns them: a plain state dict without num_batches_tracked
        state = {k: v for k, v in net.state_dict().items()
                 if not k.endswith('num_batches_tracked')}
        del net
        fd, tmp = tempfile.mkstemp(prefix='.resnet38d-psa.', suffix='.pth',
                                   dir=out_dir)
        os.close(fd)
        try:
            torch.save(state, tmp)
            del state
            tool = _load_tool('tools/model_converters/resnet38d_to_mmwsss.py')
            tool.main([tmp, paths['resnet38d_ilsvrc_mmwsss.pth']])
        finally:
            with contextlib.suppress(OSError):
                os.remove(tmp)
    if todo('resnet101-5d3b4d8f.pth'):
        with _seeded(seed + 4):
            net = torchvision.models.resnet101(weights=None,
                                               zero_init_residual=True)
        # RGB normalised by the ImageNet mean / std (configs/vwl/)
        _calibrate_batch_norm(net, input_scale=1.0, seed=seed + 4)
        state = net.state_dict()
        del net
        with atomic_write(paths['resnet101-5d3b4d8f.pth']) as f:
            torch.save(state, f)
        del state
    return paths
