"""Deterministic generator of the embedded toy WSSS dataset (VOC layout).

The toy set is built so that weak supervision is *hard in the same way* it is on real
data: every object has a class-specific silhouette filled with a body texture that all
classes share, plus a small class-specific marker. An image-level classifier can solve
the task by looking at the marker alone, so a plain CAM fires on the marker and
under-covers the object -- exactly the failure mode that integral-object methods
(OAA, GAIN, EDAM, VWL) are designed to fix. Backgrounds are cluttered (smooth colour
noise, line/box clutter and body-texture distractor blobs that belong to no class), and
the saliency maps imitate a class-agnostic saliency detector: blurred, noisy, and with
false positives on distractors.

Layout written under ``out``::

    JPEGImages/<id>.jpg               RGB images (H = W = image_size)
    SegmentationClass/<id>.png        palette PNGs, 0 = bg, 1..K = classes
    SaliencyMaps/<id>.png             uint8 grey saliency-like maps
    Annotations/<id>.xml              VOC XML (every object; some marked difficult)
    ImageSets/Segmentation/{train,val,trainval}.txt
    ImageSets/GAIN/{pixel,box}_10pct.txt, bp_10pct_{pixel,box}.txt
                                      GAIN_ext strong subsets: 10 % of train
    cls_labels.npy                    {id: float32 multi-hot over the K fg classes}
    toy_meta.json                     generator parameters (used to skip re-generation)
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Tuple

import cv2
import numpy as np

from mmwsss.utils.io import (atomic_write, read_split_ids, save_class_labels,
                             save_jpg_atomic, save_png_atomic, voc_palette,
                             write_split_ids)
from .strong_subsets import (SUBSET_KINDS, strong_subset_files,
                             write_strong_subsets)

TOY_CLASSES = ('background', 'disc', 'box', 'triangle', 'star', 'cross',
               'diamond', 'hexagon', 'crescent')

# Class-specific marker colours (saturated, well separated), one per fg class.
_MARKER_COLORS = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25],
     [145, 30, 180], [70, 240, 240], [240, 50, 230], [250, 250, 250]],
    dtype=np.uint8)
# Shared body colour (all classes).
_BODY_COLOR = np.array([176, 124, 84], dtype=np.float32)

#: The default generator version (``toy_meta.json`` records the one used).
GENERATOR_VERSION = 2
#: Versions :func:`make_toy_dataset` can write.
GENERATOR_VERSIONS = (1, 2)
#: GAIN_ext strong subsets written with every toy dataset (Li et al., CVPR 2018,
#: §3.2: "1~10 percent" of the labels are pixel-level): this percentage of the
#: train images (rounded half up, at least 1), chosen with the dataset's seed, under
#: ``ImageSets/GAIN`` with ``10pct`` in place of the number (``pixel_10pct.txt``),
#: so that a config names the same file for the 400-image set and the small test
#: and demo sets
STRONG_SUBSET_PERCENT = 10
STRONG_SUBSET_DIR = 'ImageSets/GAIN'
_TRAIN_LIST = 'ImageSets/Segmentation/train.txt'


def _regular_polygon(n, r, rot):
    a = rot + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(a), np.sin(a)], 1) * r


def _shape_mask(cls_name: str, size: int, cx: float, cy: float, r: float,
                rot: float) -> np.ndarray:
    """Binary silhouette of one object of class ``cls_name``."""
    m = np.zeros((size, size), np.uint8)
    c = np.array([cx, cy])

    def poly(p):
        cv2.fillPoly(m, [np.round(p + c).astype(np.int32)], 1)

    if cls_name == 'disc':
        cv2.circle(m, (int(round(cx)), int(round(cy))), int(round(r)), 1, -1)
    elif cls_name == 'box':
        poly(_regular_polygon(4, r * 1.05, rot + np.pi / 4))
    elif cls_name == 'triangle':
        poly(_regular_polygon(3, r * 1.15, rot - np.pi / 2))
    elif cls_name == 'star':
        outer = _regular_polygon(5, r * 1.1, rot - np.pi / 2)
        inner = _regular_polygon(5, r * 0.5, rot - np.pi / 2 + np.pi / 5)
        pts = np.empty((10, 2))
        pts[0::2], pts[1::2] = outer, inner
        poly(pts)
    elif cls_name == 'cross':
        w = r * 0.38
        arm = np.array([[-r, -w], [r, -w], [r, w], [-r, w]])
        rotm = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
        poly(arm @ rotm.T)
        poly(arm[:, ::-1] @ rotm.T)
    elif cls_name == 'diamond':
        pts = np.array([[0, -r * 1.15], [r * 0.7, 0], [0, r * 1.15], [-r * 0.7, 0]])
        rotm = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
        poly(pts @ rotm.T)
    elif cls_name == 'hexagon':
        poly(_regular_polygon(6, r, rot))
    elif cls_name == 'crescent':
        cv2.circle(m, (int(round(cx)), int(round(cy))), int(round(r)), 1, -1)
        ox = cx + np.cos(rot) * r * 0.55
        oy = cy + np.sin(rot) * r * 0.55
        cv2.circle(m, (int(round(ox)), int(round(oy))), int(round(r * 0.8)), 0, -1)
    else:
        raise ValueError(f'unknown toy class {cls_name!r}')
    return m.astype(bool)


def _smooth_noise(rng, size, scale, channels=1):
    small = rng.random((max(2, size // scale), max(2, size // scale), channels))
    big = cv2.resize(small.astype(np.float32), (size, size),
                     interpolation=cv2.INTER_CUBIC)
    return big.reshape(size, size, channels)


def _body_texture(rng, size):
    """The body texture shared by every class: stripes + grain on one colour."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(5.0, 8.0)
    stripes = 0.5 + 0.5 * np.sin(
        (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    grain = rng.normal(0, 1, (size, size)).astype(np.float32)
    tex = _BODY_COLOR[None, None] * (0.8 + 0.25 * stripes[..., None])
    tex += grain[..., None] * 8 + rng.uniform(-12, 12, 3)
    return tex


def _background(rng, size):
    base = rng.uniform(40, 200, 3).astype(np.float32)
    img = base + (_smooth_noise(rng, size, 16, 3) - 0.5) * 120
    img += (_smooth_noise(rng, size, 4, 3) - 0.5) * 40
    _clutter(rng, img, size, lambda: rng.uniform(0, 255, 3).tolist())
    return img


def _clutter(rng, img: np.ndarray, size: int, draw_colour) -> None:
    """3-7 random lines and box outlines (in place), each of ``draw_colour()``."""
    for _ in range(rng.integers(3, 8)):
        color = draw_colour()
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        if rng.random() < 0.5:
            cv2.line(img, p1, p2, color, int(rng.integers(1, 3)))
        else:
            cv2.rectangle(img, p1, p2, color, 1)


def _distractor_mask(rng, size):
    """An irregular blob that is neither an object nor background texture."""
    m = np.zeros((size, size), np.uint8)
    cx, cy = rng.uniform(0, size, 2)
    axes = (int(rng.uniform(5, 13)), int(rng.uniform(4, 10)))
    cv2.ellipse(m, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360,
                1, -1)
    return m.astype(bool)


def _marker_pattern(cls_idx, ms):
    """A class-specific marker: colour plus a small pattern."""
    color = _MARKER_COLORS[cls_idx].astype(np.float32)
    yy, xx = np.mgrid[0:ms, 0:ms]
    patterns = [
        np.ones((ms, ms)),
        ((xx + yy) % 2 == 0).astype(float) * 0.5 + 0.5,
        (xx % 3 != 0).astype(float) * 0.6 + 0.4,
        (yy % 3 != 0).astype(float) * 0.6 + 0.4,
    ]
    pat = patterns[cls_idx % len(patterns)]
    return color[None, None] * pat[..., None]


def _marker_fits(inner: np.ndarray, ms: int) -> np.ndarray:
    """The pixels of ``inner`` where an ``ms`` x ``ms`` marker centred as in
    :func:`_generate_one` lies entirely inside the image."""
    h, w = inner.shape
    fits = np.zeros_like(inner)
    lo = ms // 2
    fits[lo:h - ms + lo + 1, lo:w - ms + lo + 1] = True
    return inner & fits


def _visible_parts(masks: List[np.ndarray]) -> List[np.ndarray]:
    """The visible part of each object mask: later objects occlude earlier ones."""
    visible = []
    for i, m in enumerate(masks):
        v = m.copy()
        for later in masks[i + 1:]:
            v &= ~later
        visible.append(v)
    return visible


def _paint_object(rng, img: np.ndarray, label: np.ndarray, sal: np.ndarray,
                  mask: np.ndarray, cls: int, tex: np.ndarray) -> None:
    """Paint one object (in place): its body texture, a thin dark outline (the
    silhouette is visible but not class-coloured), its label and its saliency."""
    img[mask] = tex[mask]
    label[mask] = cls + 1
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3),
                                                            np.uint8)).astype(bool)
    img[edge] *= 0.6
    sal[mask] = np.maximum(sal[mask], rng.uniform(0.65, 1.0))


def _finish(rng, size: int, img: np.ndarray, sal: np.ndarray,
            distractors: np.ndarray, objects: List[dict], masks: List[np.ndarray],
            visible: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """The last steps of every generator version (in this order of random draws):
    image noise, the objects' boxes and ``difficult`` flags, and the saliency map
    (blurred, partially missing, with false positives on the distractors and random
    blobs, and noise). Returns the uint8 image and saliency map; ``img`` (float32)
    and ``sal`` are modified in place."""
    img += rng.normal(0, 4, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # objects' bounding boxes from their visible parts
    for obj, m, v in zip(objects, masks, visible):
        ys, xs = np.nonzero(v)
        obj['bbox'] = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1,
                       int(ys.max()) + 1)
        # heavily occluded objects are sometimes flagged difficult, as in VOC
        obj['difficult'] = int(v.sum() < 0.75 * m.sum() and rng.random() < 0.5)
    holes = _smooth_noise(rng, size, 8)[..., 0] < 0.18
    sal[holes] *= 0.5
    sal = np.maximum(sal, distractors * rng.uniform(0.3, 0.8))
    for _ in range(int(rng.integers(0, 3))):
        sal = np.maximum(sal, _distractor_mask(rng, size) * rng.uniform(0.2, 0.6))
    sal = cv2.GaussianBlur(sal, (0, 0), sigmaX=rng.uniform(1.5, 3.5))
    sal += (_smooth_noise(rng, size, 8)[..., 0] - 0.5) * 0.15
    sal += rng.normal(0, 0.03, sal.shape)
    sal = (np.clip(sal, 0, 1) * 255).round().astype(np.uint8)
    return img, sal


def _generate_one(rng, size: int, num_fg: int, max_objects: int):
    """Return (image uint8 HxWx3, label uint8 HxW, saliency uint8 HxW, objects)."""
    for _attempt in range(100):
        n_obj = int(rng.integers(1, max_objects + 1))
        classes = rng.choice(num_fg, size=n_obj, replace=False)
        label = np.zeros((size, size), np.uint8)
        masks, objects = [], []
        for c in classes:
            r = rng.uniform(size * 0.14, size * 0.25)
            cx, cy = rng.uniform(r * 0.9, size - r * 0.9, 2)
            m = _shape_mask(TOY_CLASSES[c + 1], size, cx, cy, r,
                            rng.uniform(0, 2 * np.pi))
            masks.append(m)
            objects.append(dict(cls=int(c)))
        visible = _visible_parts(masks)
        ok = all(v.sum() >= 0.4 * m.sum() and v.sum() >= 150
                 for v, m in zip(visible, masks))
        # a marker must fit entirely inside every object's visible part
        ms = max(5, size // 16)
        kernel = np.ones((ms + 4, ms + 4), np.uint8)
        inner = [cv2.erode(v.astype(np.uint8), kernel).astype(bool) for v in visible]
        # cv2.erode treats pixels beyond the image as set, so `inner` may hold
        # pixels whose marker would leave the image: at least one must fit
        ok = ok and all(_marker_fits(i, ms).any() for i in inner)
        if ok:
            break
    else:  # pragma: no cover - practically unreachable with these sizes
        raise RuntimeError('toy generator could not place objects')

    img = _background(rng, size)
    sal = np.zeros((size, size), np.float32)
    # body-texture distractors in the background (no class, not salient by GT)
    distractors = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(0, 4))):
        distractors |= _distractor_mask(rng, size)
    tex = _body_texture(rng, size)
    img[distractors] = tex[distractors]
    for obj, m in zip(objects, masks):
        _paint_object(rng, img, label, sal, m, obj['cls'], _body_texture(rng, size))
    for obj, inn in zip(objects, inner):
        ys, xs = np.nonzero(inn)
        k = int(rng.integers(len(ys)))
        y0, x0 = ys[k] - ms // 2, xs[k] - ms // 2
        if not (0 <= y0 and 0 <= x0 and y0 + ms <= size and x0 + ms <= size):
            # the draw put the marker (partly) outside the image: draw again among
            # the positions where it fits (a draw inside the image is kept as it
            # was, so every seed that worked before gives the same images)
            ys, xs = np.nonzero(_marker_fits(inn, ms))
            k = int(rng.integers(len(ys)))
            y0, x0 = ys[k] - ms // 2, xs[k] - ms // 2
        img[y0:y0 + ms, x0:x0 + ms] = _marker_pattern(obj['cls'], ms)
    img, sal = _finish(rng, size, img, sal, distractors, objects, masks, visible)
    return img, label, sal, objects


# ----------------------------------------------------------------------------
# Version 2: large objects whose body carries weak, partly shared class evidence
# ----------------------------------------------------------------------------
# Body colours, each shared by two classes (class c uses colour c // 2), and two
# stripe periods (class c uses period c % 2): colour and period together identify
# the class, each alone only narrows it down.
_V2_BODY_COLORS = np.array(
    [[178, 120, 80], [96, 140, 96], [112, 112, 168], [160, 150, 70]],
    dtype=np.float32)
_V2_PERIODS = (4.5, 7.5)
#: probability that an attribute of an object's body (colour, period) is that of
#: another, random class: the body evidence is genuine but weak
V2_ATTRIBUTE_SWAP = 0.3


def _v2_body_attributes(rng, cls_idx: int, num_fg: int) -> Tuple[int, int]:
    """(colour index, period index) of one body of class ``cls_idx``."""
    col_cls = cls_idx if rng.random() >= V2_ATTRIBUTE_SWAP else \
        int(rng.integers(num_fg))
    per_cls = cls_idx if rng.random() >= V2_ATTRIBUTE_SWAP else \
        int(rng.integers(num_fg))
    return (col_cls // 2) % len(_V2_BODY_COLORS), per_cls % 2


def _v2_body_texture(rng, size: int, color_idx: int, period_idx: int):
    """Stripes of a class-typical period on a class-typical colour, with grain."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = _V2_PERIODS[period_idx] * rng.uniform(0.9, 1.1)
    stripes = 0.5 + 0.5 * np.sin(
        (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    grain = rng.normal(0, 1, (size, size)).astype(np.float32)
    color = _V2_BODY_COLORS[color_idx] + rng.uniform(-14, 14, 3)
    tex = color[None, None] * (0.75 + 0.35 * stripes[..., None])
    tex += grain[..., None] * 8
    return tex


def _v2_background(rng, size: int):
    """Cluttered but low-saturation background (smooth colour noise around a grey
    level, line and box clutter), so that saturated class markers are the only
    strongly coloured small things in an image."""
    grey = rng.uniform(60, 190)
    base = grey + rng.uniform(-25, 25, 3)
    img = base + (_smooth_noise(rng, size, 16, 3) - 0.5) * 50
    img += (_smooth_noise(rng, size, 16, 1) - 0.5) * 80
    img += (_smooth_noise(rng, size, 4, 3) - 0.5) * 25
    _clutter(rng, img, size,
             lambda: (rng.uniform(30, 220) + rng.uniform(-30, 30, 3)).tolist())
    return img.astype(np.float32)


def _v2_blob_mask(rng, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """A smooth random blob (the same shape distribution for every class)."""
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    rad = np.ones_like(t)
    for k in (2, 3, 4):
        rad += rng.uniform(0, 0.22 / (k - 1)) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.75, 1.0)
    rot = rng.uniform(0, np.pi)
    x = rad * np.cos(t) * r
    y = rad * np.sin(t) * r * aspect
    pts = np.stack([x * np.cos(rot) - y * np.sin(rot) + cx,
                    x * np.sin(rot) + y * np.cos(rot) + cy], 1)
    m = np.zeros((size, size), np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m.astype(bool)


def _generate_one_v2(rng, size: int, num_fg: int, max_objects: int,
                     markers: bool = True):
    """Version 2 of :func:`_generate_one` (same return values).

    Objects are large (radius 0.17-0.32 of the image) random blobs whose silhouette
    says nothing about the class; the class lives in (a) one small marker (the
    discriminative part, as in version 1) and (b) the body texture: a class-typical
    colour shared with one other class and a class-typical stripe period shared with
    half of the classes, each attribute replaced by that of a random class with
    probability :data:`V2_ATTRIBUTE_SWAP`. Distractor blobs carry body textures of
    random classes (no marker, no label). ``markers=False`` paints no marker (the
    body-only control set); every other pixel is the same.
    """
    ms = max(6, size // 12)
    for _attempt in range(100):
        n_obj = int(rng.integers(1, max_objects + 1))
        classes = rng.choice(num_fg, size=n_obj, replace=False)
        r_lo = size * (0.22 - 0.025 * (n_obj - 1))
        r_hi = size * (0.32 - 0.04 * (n_obj - 1))
        masks, objects = [], []
        for c in classes:
            r = rng.uniform(r_lo, r_hi)
            cx, cy = rng.uniform(r * 0.8, size - r * 0.8, 2)
            masks.append(_v2_blob_mask(rng, size, cx, cy, r))
            objects.append(dict(cls=int(c)))
        visible = _visible_parts(masks)
        ok = all(v.sum() >= 0.5 * m.sum() and v.sum() >= 400
                 for v, m in zip(visible, masks))
        kernel = np.ones((ms + 4, ms + 4), np.uint8)
        inner = [_marker_fits(cv2.erode(v.astype(np.uint8), kernel).astype(bool), ms)
                 for v in visible]
        ok = ok and all(i.any() for i in inner)
        if ok:
            break
    else:  # pragma: no cover - practically unreachable with these sizes
        raise RuntimeError('toy generator could not place objects')

    label = np.zeros((size, size), np.uint8)
    img = _v2_background(rng, size)
    sal = np.zeros((size, size), np.float32)
    distractors = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(0, 3))):
        d = _v2_blob_mask(rng, size, *rng.uniform(0, size, 2),
                          rng.uniform(size * 0.06, size * 0.13))
        tex = _v2_body_texture(rng, size,
                               *_v2_body_attributes(rng, int(rng.integers(num_fg)),
                                                    num_fg))
        img[d] = tex[d]
        distractors |= d
    for obj, m in zip(objects, masks):
        tex = _v2_body_texture(rng, size, *_v2_body_attributes(rng, obj['cls'], num_fg))
        _paint_object(rng, img, label, sal, m, obj['cls'], tex)
    for obj, inn in zip(objects, inner):
        ys, xs = np.nonzero(inn)
        k = int(rng.integers(len(ys)))
        y0, x0 = ys[k] - ms // 2, xs[k] - ms // 2
        if markers:
            img[y0:y0 + ms, x0:x0 + ms] = _marker_pattern(obj['cls'], ms)
        obj['marker'] = (int(x0), int(y0), int(x0 + ms), int(y0 + ms))
    img, sal = _finish(rng, size, img, sal, distractors, objects, masks, visible)
    return img, label, sal, objects


def _voc_xml(img_id: str, size: int, objects: List[dict]) -> str:
    lines = [
        '<annotation>', '  <folder>Toy</folder>',
        f'  <filename>{img_id}.jpg</filename>',
        f'  <size><width>{size}</width><height>{size}</height><depth>3</depth></size>',
        '  <segmented>1</segmented>'
    ]
    for obj in objects:
        x1, y1, x2, y2 = obj['bbox']
        lines += [
            '  <object>', f'    <name>{TOY_CLASSES[obj["cls"] + 1]}</name>',
            '    <pose>Unspecified</pose>', '    <truncated>0</truncated>',
            f'    <difficult>{obj["difficult"]}</difficult>',
            f'    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>'
            f'<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>', '  </object>'
        ]
    lines.append('</annotation>')
    return '\n'.join(lines) + '\n'


def make_toy_dataset(out: str,
                     seed: int = 0,
                     num_train: int = 400,
                     num_val: int = 100,
                     image_size: int = 128,
                     max_objects: int = 3,
                     num_classes: int = 8,
                     overwrite: bool = False,
                     version: int = GENERATOR_VERSION,
                     markers: bool = True) -> Dict:
    """Generate the toy dataset under ``out`` (deterministic for a given seed).

    If ``out`` already holds a toy dataset made with the same parameters, nothing
    is written (the files would be identical). Any other non-empty ``out`` is only
    replaced with ``overwrite=True``. The dataset is generated into a temporary sibling folder and renamed
    into place, so an interrupted run leaves no half-written dataset behind.

    Every dataset also holds GAIN_ext strong subsets of its train split
    (:func:`strong_subset_meta`; ``toy_meta.json`` key ``strong_subsets``). A
    folder made before they existed (its ``toy_meta.json`` is this one without that
    key) gets them added in place: the images are the same, so they are not
    regenerated.

    Returns the parameters written to ``toy_meta.json``.
    """
    if num_train < 1:
        raise ValueError('num_train must be at least 1')
    if not 1 <= num_classes <= len(TOY_CLASSES) - 1:
        raise ValueError(f'num_classes must be in [1, {len(TOY_CLASSES) - 1}]')
    if max_objects < 1 or max_objects > num_classes:
        raise ValueError('max_objects must be in [1, num_classes]')
    if image_size < 64:
        raise ValueError('image_size must be at least 64')
    if version not in GENERATOR_VERSIONS:
        raise ValueError(f'version must be one of {GENERATOR_VERSIONS}, got '
                         f'{version!r}')
    if not markers and version < 2:
        raise ValueError('markers=False (the body-only control set) needs '
                         'version 2')
    meta = dict(
        generator_version=version,
        seed=seed,
        num_train=num_train,
        num_val=num_val,
        image_size=image_size,
        max_objects=max_objects,
        classes=list(TOY_CLASSES[:num_classes + 1]))
    if version >= 2:
        meta['markers'] = bool(markers)
    meta['strong_subsets'] = strong_subset_meta(num_train, seed)
    out = osp.abspath(out)
    meta_path = osp.join(out, 'toy_meta.json')
    if osp.exists(out):
        if osp.isfile(meta_path):
            with open(meta_path) as f:
                old = json.load(f)
            if old == meta:
                return meta  # identical parameters -> identical files
            if isinstance(old, dict) and 'strong_subsets' not in old and \
                    old == _without_subsets(meta):
                return add_strong_subsets(out)  # an earlier folder
        if os.listdir(out) and not overwrite:
            raise FileExistsError(
                f'{out} exists and does not hold a toy dataset with these '
                'parameters; pass --overwrite (overwrite=True) to replace it or '
                'choose another --out')

    parent = osp.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.' + osp.basename(out) + '.', dir=parent)
    try:
        _write_toy(tmp, meta)
        if osp.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def strong_subset_meta(num_train: int, seed: int) -> Dict:
    """The ``strong_subsets`` entry of ``toy_meta.json``: the GAIN_ext subsets of a
    toy dataset with ``num_train`` train images and seed ``seed``.

    ``num`` = :data:`STRONG_SUBSET_PERCENT` % of the train images (rounded half up,
    at least 1), chosen with :func:`~mmwsss.datasets.choose_strong_subsets` from
    ``ImageSets/Segmentation/train.txt`` with the dataset's seed, for each kind
    (``pixel``, ``box``, ``b+p``; pixel and box are the same ids, b+p splits them).
    """
    num = max(1, (num_train * STRONG_SUBSET_PERCENT + 50) // 100)
    tag = f'{STRONG_SUBSET_PERCENT}pct'
    files = []
    for kind in SUBSET_KINDS:
        files += [f'{STRONG_SUBSET_DIR}/{name}' for name in
                  strong_subset_files(num, kind, tag).values()]
    return dict(percent=STRONG_SUBSET_PERCENT, num=int(num), seed=seed,
                pool=_TRAIN_LIST, files=files)


def add_strong_subsets(out: str) -> Dict:
    """Add the GAIN_ext strong subsets to a toy dataset made before they existed
    (``toy_meta.json`` without ``strong_subsets``), in place: the lists
    :func:`make_toy_dataset` writes, then the updated ``toy_meta.json``. A dataset
    that has them is left as it is.

    Returns the content of ``toy_meta.json``.
    """
    with open(osp.join(out, 'toy_meta.json')) as f:
        meta = json.load(f)
    if 'strong_subsets' not in meta:
        meta['strong_subsets'] = strong_subset_meta(meta['num_train'],
                                                    meta['seed'])
        _write_strong_subsets(out, meta)
    return meta


def _without_subsets(meta: Dict) -> Dict:
    return {k: v for k, v in meta.items() if k != 'strong_subsets'}


def _write_strong_subsets(root: str, meta: Dict) -> None:
    """Write the subset lists of ``meta['strong_subsets']`` into ``root``, then
    ``toy_meta.json`` (last: an interrupted run is redone)."""
    sub = meta['strong_subsets']
    pool = read_split_ids(osp.join(root, sub['pool']))
    written = []
    for kind in SUBSET_KINDS:
        files = write_strong_subsets(
            osp.join(root, STRONG_SUBSET_DIR), pool, sub['num'], kind,
            seed=sub['seed'], pool_name=sub['pool'],
            tag=f"{sub['percent']}pct")
        written += [osp.relpath(p, root).replace(os.sep, '/')
                    for p in files.values()]
    assert written == sub['files'], (written, sub['files'])
    with atomic_write(osp.join(root, 'toy_meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)


def _write_toy(root: str, meta: Dict) -> None:
    size = meta['image_size']
    num_fg = len(meta['classes']) - 1
    palette = voc_palette()
    # one independent stream per image: adding images never changes earlier ones
    seeds = np.random.SeedSequence(meta['seed']).spawn(meta['num_train'] +
                                                       meta['num_val'])
    splits: Tuple[Tuple[str, int, int], ...] = (
        ('train', 0, meta['num_train']),
        ('val', meta['num_train'], meta['num_train'] + meta['num_val']))
    cls_labels, all_ids = {}, []
    for split, start, stop in splits:
        ids = []
        for i in range(start, stop):
            img_id = f'toy_{split}_{i - start:05d}'
            rng = np.random.default_rng(seeds[i])
            if meta['generator_version'] == 1:
                img, label, sal, objects = _generate_one(
                    rng, size, num_fg, meta['max_objects'])
            else:
                img, label, sal, objects = _generate_one_v2(
                    rng, size, num_fg, meta['max_objects'], meta['markers'])
            save_jpg_atomic(osp.join(root, 'JPEGImages', img_id + '.jpg'), img)
            save_png_atomic(
                osp.join(root, 'SegmentationClass', img_id + '.png'), label,
                palette)
            save_png_atomic(osp.join(root, 'SaliencyMaps', img_id + '.png'), sal)
            with atomic_write(osp.join(root, 'Annotations', img_id + '.xml'),
                              'w') as f:
                f.write(_voc_xml(img_id, size, objects))
            vec = np.zeros(num_fg, np.float32)
            vec[[o['cls'] for o in objects]] = 1
            cls_labels[img_id] = vec
            ids.append(img_id)
        write_split_ids(
            osp.join(root, 'ImageSets', 'Segmentation', split + '.txt'), ids)
        all_ids += ids
    write_split_ids(
        osp.join(root, 'ImageSets', 'Segmentation', 'trainval.txt'), all_ids)
    save_class_labels(osp.join(root, 'cls_labels.npy'), cls_labels)
    _write_strong_subsets(root, meta)  # and toy_meta.json
