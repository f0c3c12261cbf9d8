"""Strong subsets of a WSSS training split (GAIN_ext: a few images with pixel masks or
boxes among many with image-level labels).

Li et al., "Tell Me Where to Look: Guided Attention Inference Network", CVPR 2018
(and the TPAMI version, §3.2-3.3, Tables 1-4) train the attention network with 200,
400, 900 or 1,464 randomly chosen VOC images that also have pixel-level masks
(GAIN^p_ext) or bounding boxes (GAIN^b_ext), or half of each ("b+p": 100B+100P,
732B+732P). A subset is a file list of image ids; the WSSS datasets read them with
``strong_subsets=dict(pixel=FILE, box=FILE)`` (docs/datasets.md, section 'Strong
subsets').

This module holds

* :func:`choose_strong_subsets` / :func:`write_strong_subsets`: deterministic random
  subsets (the library side of ``tools/misc/make_strong_subsets.py``);
* :func:`voc_box_masks`: per-class box masks from VOC boxes (the ``B^c`` of the box
  loss, Eq. 9), used by :class:`~mmwsss.datasets.transforms.LoadExtraSupervision`.
"""
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmwsss.utils.io import atomic_write

__all__ = [
    'STRONG_KINDS', 'SUBSET_KINDS', 'choose_strong_subsets',
    'strong_subset_files', 'write_strong_subsets', 'voc_box_masks'
]

#: the kinds of extra supervision (``strong_subsets`` keys, data-info flags
#: ``strong_<kind>``)
STRONG_KINDS = ('pixel', 'box')
#: what :func:`choose_strong_subsets` makes: pixel only, boxes only, half and half
SUBSET_KINDS = ('pixel', 'box', 'b+p')


def choose_strong_subsets(pool: Sequence[str], num: int, kind: str,
                          seed: int = 0) -> Dict[str, List[str]]:
    """Choose ``num`` ids of ``pool`` at random, deterministically.

    The pool is sorted and de-duplicated first (its file order does not matter),
    then permuted with ``numpy.random.default_rng(seed)``; the subset is the first
    ``num`` ids of that permutation. Subsets of one pool and seed are therefore
    nested: the 200 ids are among the 400, the 400 among the 900. For ``'b+p'`` the
    chosen ids are split half and half along the permutation (even positions pixel,
    odd positions box; an odd ``num`` gives the pixel half one id more), so that
    ``b+p`` of 200 is 100 pixel + 100 box ids, again nested across sizes.

    Args:
        pool: the ids to choose from (GAIN_ext: VOC 2012 train, 1,464 ids).
        num: how many ids, ``1 <= num <= len(pool)``.
        kind: ``'pixel'``, ``'box'`` or ``'b+p'``.
        seed: the random seed.

    Returns:
        dict: ``{'pixel': ids}``, ``{'box': ids}`` or both, each list sorted.
    """
    if kind not in SUBSET_KINDS:
        raise ValueError(f'unknown strong-subset kind {kind!r}; one of '
                         f'{SUBSET_KINDS}')
    ids = sorted(set(str(i) for i in pool))
    if not isinstance(num, (int, np.integer)) or not 1 <= num <= len(ids):
        raise ValueError(f'cannot choose {num!r} ids from a pool of {len(ids)} '
                         f'ids: the number must be in 1..{len(ids)}')
    order = np.random.default_rng(seed).permutation(len(ids))[:int(num)]
    chosen = [ids[i] for i in order]
    if kind == 'b+p':
        return dict(pixel=sorted(chosen[0::2]), box=sorted(chosen[1::2]))
    return {kind: sorted(chosen)}


def strong_subset_files(num: int, kind: str,
                        tag: Optional[str] = None) -> Dict[str, str]:
    """The file names :func:`write_strong_subsets` uses: ``pixel_200.txt``,
    ``box_200.txt``, and ``bp_200_pixel.txt`` + ``bp_200_box.txt`` for b+p.
    ``tag`` replaces the number in the names (the toy dataset's lists are
    ``pixel_10pct.txt``, ...: the same name whatever the number of images)."""
    name = str(num) if tag is None else str(tag)
    if kind == 'b+p':
        return dict(pixel=f'bp_{name}_pixel.txt', box=f'bp_{name}_box.txt')
    if kind not in STRONG_KINDS:
        raise ValueError(f'unknown strong-subset kind {kind!r}; one of '
                         f'{SUBSET_KINDS}')
    return {kind: f'{kind}_{name}.txt'}


def write_strong_subsets(out_dir: str, pool: Sequence[str], num: int, kind: str,
                         seed: int = 0,
                         pool_name: Optional[str] = None,
                         tag: Optional[str] = None) -> Dict[str, str]:
    """Choose a subset (:func:`choose_strong_subsets`) and write its id lists into
    ``out_dir`` (atomically; names from :func:`strong_subset_files`, ``tag`` in
    place of the number when given). Each file starts with a ``#`` line saying
    how it was made (split lists skip ``#`` lines).

    Returns:
        dict: ``{kind: path}`` of the files written.
    """
    subsets = choose_strong_subsets(pool, num, kind, seed)
    names = strong_subset_files(num, kind, tag)
    what = {'pixel': 'pixel masks', 'box': 'boxes'}
    n_pool = len(set(pool))
    written = {}
    for k, ids in subsets.items():
        path = osp.join(out_dir, names[k])
        header = (f'# GAIN_ext {kind} subset of {num}: the {len(ids)} images with '
                  f'{what[k]}; chosen from {n_pool} ids'
                  + (f' of {pool_name}' if pool_name else '') + f', seed {seed}')
        with atomic_write(path, 'w') as f:
            f.write(header + '\n')
            for i in ids:
                f.write(f'{i}\n')
        written[k] = path
    return written


def _pixel_range(lo: float, hi: float, scale: float, size: int
                 ) -> Optional[Tuple[int, int]]:
    """The pixels (0-based, inclusive) of a VOC box side ``[lo, hi]`` (1-based,
    inclusive coordinates), after scaling the image by ``scale``: those whose
    centre lies in the box's continuous extent ``[lo - 1, hi] * scale``. Integer
    coordinates without scaling give exactly ``lo - 1 .. hi - 1``."""
    eps = 1e-6
    first = math.ceil((lo - 1) * scale - 0.5 - eps)
    last = math.floor(hi * scale - 0.5 + eps)
    last = max(last, first)  # a box is at least one pixel wide
    first, last = max(first, 0), min(last, size - 1)
    if first > last:
        return None
    return first, last


def voc_box_masks(boxes: np.ndarray,
                  labels: np.ndarray,
                  num_classes: int,
                  shape: Tuple[int, int],
                  ann_size: Optional[Tuple[int, int]] = None,
                  difficult: Optional[np.ndarray] = None,
                  with_difficult: bool = True) -> np.ndarray:
    """Per-class box masks: channel ``c`` is 1 inside any box of foreground class
    ``c`` (the union of that class's boxes; ``B^c`` of GAIN's box loss, Li et al.,
    CVPR 2018, Eq. 9).

    Args:
        boxes: (N, 4) ``(xmin, ymin, xmax, ymax)`` in VOC's 1-based inclusive pixel
            coordinates (floats allowed).
        labels: (N,) 0-based foreground class indices.
        num_classes: K, the number of foreground classes.
        shape: (H, W) of the image the masks are for (the loaded image).
        ann_size: (width, height) the boxes refer to (the XML ``<size>``); when it
            differs from ``shape`` the boxes are scaled to the image. None: the
            boxes are in the image's frame.
        difficult: (N,) bool flags; with ``with_difficult=False`` those boxes are
            left out.
        with_difficult: keep the boxes flagged difficult (default, as the
            image-level labels of the WSSS lists do).

    Returns:
        np.ndarray: (H, W, K) uint8 in {0, 1} (channels last, as MMCV's geometric
        transforms expect).
    """
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w, int(num_classes)), np.uint8)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if len(boxes) != len(labels):
        raise ValueError(f'{len(boxes)} boxes but {len(labels)} box labels')
    sx = sy = 1.0
    if ann_size is not None:
        sx, sy = w / float(ann_size[0]), h / float(ann_size[1])
    keep = np.ones(len(boxes), bool)
    if difficult is not None and not with_difficult:
        keep &= ~np.asarray(difficult, bool).reshape(-1)
    for (x1, y1, x2, y2), c, k in zip(boxes, labels, keep):
        if not k:
            continue
        if not 0 <= c < num_classes:
            raise ValueError(f'box class index {int(c)} is not in '
                             f'0..{num_classes - 1}')
        xs = _pixel_range(x1, x2, sx, w)
        ys = _pixel_range(y1, y2, sy, h)
        if xs is None or ys is None:
            continue  # outside the image
        out[ys[0]:ys[1] + 1, xs[0]:xs[1] + 1, c] = 1
    return out
