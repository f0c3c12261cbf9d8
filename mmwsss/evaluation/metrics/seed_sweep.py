"""Seed evaluation over many background thresholds in one pass (pure NumPy).

The seed rule of irn / VWL / EDAM turns K class activation maps into a label map with a
constant background score ``t``::

    seed = argmax([t, cam_0, ..., cam_{K-1}])      # ties go to background

With ``m = max_c cam_c`` and ``a = argmax_c cam_c + 1`` per pixel this is simply
``seed = a if m > t else 0``. Only ``m`` depends on the threshold test, so a pixel is
fully described by ``(b, gt, a)`` where ``b`` is the number of thresholds strictly
below ``m`` (``np.searchsorted(thresholds, m, side='left')``): the pixel is predicted
``a`` for every threshold index ``j < b`` and background for ``j >= b``.

:func:`sweep_histogram` counts the triples ``(b, gt, a)`` of an image with one
``np.bincount`` into a ``(T + 1, C, C)`` histogram (``C = K + 1``); histograms add over
images. :func:`confusions_from_histogram` turns the summed histogram into the T
confusion matrices with a suffix sum over ``b`` (pixels still foreground) and a prefix
sum of row totals (pixels already background), so the cost of the sweep is one
top-class pass per image plus ``O(T C^2)``, instead of one argmax per image *and
threshold* (:func:`per_threshold_loop`, the reference implementation).

Labels: 0 = background, ``c + 1`` = foreground class ``c``, ``ignore_index`` (255) in
the GT is skipped. Confusion matrices have GT rows and predicted columns.

Comparisons with the thresholds are made in the floating dtype of the CAMs (float32 for
CAM files read by :func:`mmwsss.utils.cam_io.load_cam`; float16 and integer inputs are
promoted to float32), exactly like :meth:`mmwsss.utils.cam_io.CamRecord.seed`, so a
CAM value equal to ``float32(t)`` is background at threshold ``t`` in both.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..functional import confusion_matrix, nanmean, per_class_scores

__all__ = [
    'DEFAULT_THRESHOLDS', 'check_thresholds', 'sweep_histogram',
    'confusions_from_histogram', 'seed_scores', 'per_threshold_loop',
    'gt_classes_without_seed', 'seeds_never_foreground',
    'degenerate_seed_warnings'
]

#: The default background thresholds: 0.05, 0.10, ..., 0.95 (19 values).
DEFAULT_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def check_thresholds(thresholds: Optional[Sequence[float]]) -> np.ndarray:
    """Validate background thresholds: a non-empty, strictly increasing sequence of
    finite values in [0, 1]. ``None`` gives :data:`DEFAULT_THRESHOLDS`.

    Returns:
        np.ndarray: float64 array of shape (T,).
    """
    if thresholds is None:
        return DEFAULT_THRESHOLDS.astype(np.float64)
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thr.size == 0:
        raise ValueError('thresholds must not be empty')
    if not np.isfinite(thr).all() or thr.min() < 0 or thr.max() > 1:
        raise ValueError(
            f'thresholds must be finite values in [0, 1], got {thr.tolist()}')
    if thr.size > 1 and not (np.diff(thr) > 0).all():
        raise ValueError('thresholds must be strictly increasing, got '
                         f'{thr.tolist()}')
    return thr


def _work_dtype(cams: np.ndarray) -> np.dtype:
    if cams.dtype in (np.float32, np.float64):
        return cams.dtype
    return np.dtype(np.float32)


def _prepare(cams: np.ndarray, gt: np.ndarray, thresholds, num_classes: int,
             ignore_index: int):
    """Shared validation. Returns (cams, gt_valid (N,) int64, valid mask or None,
    thresholds in the work dtype)."""
    thr = check_thresholds(thresholds)
    cams = np.asarray(cams)
    gt = np.asarray(gt)
    if cams.ndim != 3:
        raise ValueError(f'cams must be (K, H, W), got shape {cams.shape}')
    if gt.ndim != 2:
        raise ValueError(f'gt must be (H, W), got shape {gt.shape}')
    if cams.shape[0] != num_classes:
        raise ValueError(
            f'cams have {cams.shape[0]} maps but num_classes (foreground) is '
            f'{num_classes}; pass dense (num_classes, H, W) maps with zeros for '
            'absent classes')
    if cams.shape[1:] != gt.shape:
        raise ValueError(f'CAM shape {tuple(cams.shape[1:])} differs from GT '
                         f'shape {tuple(gt.shape)}')
    if not np.issubdtype(gt.dtype, np.integer):
        raise ValueError(f'gt must hold integer labels, got dtype {gt.dtype}')
    dtype = _work_dtype(cams)
    cams = cams.astype(dtype, copy=False)
    thr_w = thr.astype(dtype)
    if thr_w.size > 1 and not (np.diff(thr_w) > 0).all():
        raise ValueError(f'thresholds {thr.tolist()} are not distinct in '
                         f'{dtype} (the dtype of the CAMs)')
    gt = gt.reshape(-1).astype(np.int64, copy=False)
    valid = gt != ignore_index
    if valid.all():
        valid = None
        gt_v = gt
    else:
        gt_v = gt[valid]
    if gt_v.size:
        lo, hi = int(gt_v.min()), int(gt_v.max())
        if lo < 0 or hi > num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f'GT label {bad} is out of range: labels must be 0 (background), '
                f'1..{num_classes} (foreground) or {ignore_index} (ignore)')
    return cams, gt_v, valid, thr_w


def sweep_histogram(cams: np.ndarray,
                    gt: np.ndarray,
                    thresholds: Optional[Sequence[float]],
                    num_classes: int,
                    ignore_index: int = 255) -> np.ndarray:
    """One-pass (b, gt, a) histogram of one image for a threshold sweep.

    ``a = argmax_c cam_c + 1`` (first class on ties), ``b`` = number of thresholds
    strictly below ``m = max_c cam_c``; one ``np.bincount`` over the flat index
    ``(b, gt, a)``. Pixels with ``b = 0`` are background at every threshold and are
    stored with ``a = 0``.

    Args:
        cams: (K, H, W) float CAMs, dense: one map per foreground class, zeros for
            classes without a map (:meth:`CamRecord.dense`).
        gt: (H, W) integer GT labels (0 = bg, 1..K, ``ignore_index``).
        thresholds: T strictly increasing background thresholds in [0, 1]
            (``None``: :data:`DEFAULT_THRESHOLDS`).
        num_classes: K, the number of *foreground* classes.
        ignore_index: GT label that is skipped.

    Returns:
        np.ndarray: int64 array of shape (T + 1, C, C), ``C = K + 1``; entry
        ``[b, g, a]`` counts the pixels with GT ``g``, top class label ``a`` and ``b``
        thresholds strictly below their top score (``a = 0`` where ``b = 0``).
        Histograms of images add up.
    """
    cams, gt_v, valid, thr = _prepare(cams, gt, thresholds, num_classes,
                                      ignore_index)
    k = num_classes
    c = k + 1
    t = thr.shape[0]
    if gt_v.size == 0:
        return np.zeros((t + 1, c, c), np.int64)
    idx, top = _top_class(cams.reshape(k, cams.shape[1] * cams.shape[2]))
    if valid is not None:
        idx = idx[valid]
        top = top[valid]
    if np.isnan(top).any():
        raise ValueError('CAMs contain NaN values')
    b = np.searchsorted(thr, top, side='left')
    # flat index of (b, gt, a) with a = idx + 1 (idx = -1: no active map)
    key = (b * c + gt_v) * c + (idx + 1)
    hist = np.bincount(key, minlength=(t + 1) * c * c)
    hist = hist.astype(np.int64, copy=False).reshape(t + 1, c, c)
    # bin b = 0 (background at every threshold): the top class is irrelevant;
    # store these pixels with a = 0 so the histogram does not depend on it
    hist[0, :, 0] = hist[0].sum(-1)
    hist[0, :, 1:] = 0
    return hist


def _top_class(flat: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-pixel top map index (first one on ties) and top score of (K, N) maps.

    Only maps with a non-zero value take part: a pixel whose active maps are all
    <= 0 has top score <= 0 and is background at every threshold (>= 0), whatever
    its top class, so all-zero maps (classes without a map) can be skipped. A running
    maximum over the maps is used instead of ``argmax(0)``, which NumPy computes
    slowly along a non-contiguous axis. Returns index -1 and score 0 where no map
    is active.
    """
    n = flat.shape[1]
    active = np.flatnonzero(flat.any(1))
    if active.size == 0:
        return np.full(n, -1, np.intp), np.zeros(n, flat.dtype)
    top = flat[active[0]].copy()
    pos = np.zeros(n, np.intp)
    upd = np.empty(n, bool)
    for i in range(1, active.size):
        row = flat[active[i]]
        np.greater(row, top, out=upd)  # strict: the first map wins ties
        np.maximum(top, row, out=top)
        np.putmask(pos, upd, i)
    return active[pos], top


def confusions_from_histogram(hist: np.ndarray) -> np.ndarray:
    """Confusion matrices of all thresholds from a (summed) sweep histogram.

    For threshold index j, pixels with ``b > j`` are predicted as their top class
    ``a``, the others as background: ``conf[j] = sum_{b > j} hist[b]`` (suffix sum)
    plus, in the background column, ``sum_{b <= j} hist[b].sum(-1)`` (prefix sum).

    Args:
        hist: (T + 1, C, C) histogram from :func:`sweep_histogram`.

    Returns:
        np.ndarray: int64 (T, C, C), rows GT, columns prediction.
    """
    hist = np.asarray(hist)
    if hist.ndim != 3 or hist.shape[1] != hist.shape[2] or hist.shape[0] < 2:
        raise ValueError('hist must have shape (T + 1, C, C) with T >= 1, got '
                         f'{hist.shape}')
    hist = hist.astype(np.int64, copy=False)
    suffix = np.cumsum(hist[::-1], axis=0)[::-1]  # suffix[j] = sum_{b >= j}
    conf = suffix[1:].copy()
    prefix = np.cumsum(hist.sum(-1), axis=0)[:-1]  # prefix[j] = sum_{b <= j}
    conf[:, :, 0] += prefix
    return conf


def seed_scores(confusions: np.ndarray,
                thresholds: Sequence[float],
                class_names: Optional[Sequence[str]] = None) -> Dict:
    """Per-threshold mIoU and per-class scores at the best threshold.

    IoU, precision and recall are NaN where undefined (0 / 0: a class absent from
    both GT and prediction for IoU, never predicted for precision, absent from the GT
    for recall); mIoU is their ``nanmean``, as in MMSeg's ``IoUMetric``
    (:func:`mmwsss.evaluation.functional.per_class_scores`,
    :func:`~mmwsss.evaluation.functional.nanmean`).

    Args:
        confusions: (T, C, C) confusion matrices (rows GT, columns prediction).
        thresholds: the T thresholds.
        class_names: C names (background first); default ``background``,
            ``class 0``, ...

    Returns:
        dict: ``thresholds`` (T,), ``miou`` (T,), ``iou_per_threshold`` (T, C),
        ``best_index``, ``best_threshold``, ``best_miou``, and at the best threshold
        ``iou``, ``precision``, ``recall`` (C,) and ``confusion`` (C, C); plus
        ``class_names``. Scores are fractions in [0, 1].
    """
    conf = np.asarray(confusions, dtype=np.float64)
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if conf.ndim != 3 or conf.shape[1] != conf.shape[2]:
        raise ValueError(f'confusions must be (T, C, C), got {conf.shape}')
    if conf.shape[0] != thr.shape[0]:
        raise ValueError(f'{conf.shape[0]} confusion matrices for '
                         f'{thr.shape[0]} thresholds')
    c = conf.shape[1]
    if class_names is None:
        class_names = ['background'] + [f'class {i}' for i in range(c - 1)]
    class_names = list(class_names)
    if len(class_names) != c:
        raise ValueError(f'{len(class_names)} class names for {c} classes '
                         '(background included)')
    per_class = per_class_scores(conf)
    iou = per_class['iou']
    miou = nanmean(iou, axis=1)
    best = int(np.nanargmax(miou)) if np.isfinite(miou).any() else 0
    return dict(
        thresholds=thr,
        miou=miou,
        iou_per_threshold=iou,
        best_index=best,
        best_threshold=float(thr[best]),
        best_miou=float(miou[best]),
        iou=iou[best],
        precision=per_class['precision'][best],
        recall=per_class['recall'][best],
        confusion=np.asarray(confusions)[best],
        class_names=class_names)


def per_threshold_loop(cams: np.ndarray,
                       gt: np.ndarray,
                       thresholds: Optional[Sequence[float]],
                       num_classes: int,
                       ignore_index: int = 255) -> np.ndarray:
    """Reference implementation: for each threshold, build the seed
    ``argmax([t, cams])`` (ties to background) and its confusion matrix.

    Same arguments as :func:`sweep_histogram`; returns the (T, C, C) confusion
    matrices of the image (equal to
    ``confusions_from_histogram(sweep_histogram(...))``), T times slower.
    """
    cams, gt_v, valid, thr = _prepare(cams, gt, thresholds, num_classes,
                                      ignore_index)
    k = num_classes
    c = k + 1
    h, w = cams.shape[1:]
    out = np.zeros((thr.shape[0], c, c), np.int64)
    for j, t in enumerate(thr):
        scores = np.concatenate([np.full((1, h, w), t, cams.dtype), cams], 0)
        seed = scores.argmax(0).reshape(-1)
        if valid is not None:
            seed = seed[valid]
        out[j] = confusion_matrix(seed, gt_v, c, ignore_index=None)
    return out


# ------------------------------------------------------- degenerate seeds
def gt_classes_without_seed(cams: np.ndarray, gt: np.ndarray,
                            ignore_index: int = 255) -> bool:
    """True when ``gt`` has at least one foreground class and the CAM of every
    such class has no positive value (all-zero maps): the image has no seed pixel
    of any of its classes at any threshold (thresholds are >= 0).

    Args:
        cams: dense (K, H, W) CAMs (zeros for classes without a map).
        gt: (H, W) integer GT labels (0 = bg, 1..K, ``ignore_index``).
    """
    cams = np.asarray(cams)
    gt = np.asarray(gt).reshape(-1)
    k = cams.shape[0]
    gt = gt[(gt != ignore_index) & (gt > 0) & (gt <= k)]
    if gt.size == 0:
        return False
    present = np.flatnonzero(np.bincount(gt.astype(np.int64),
                                         minlength=k + 1)[1:])
    return not any(bool((cams[c] > 0).any()) for c in present)


def seeds_never_foreground(hist: np.ndarray) -> bool:
    """True when a (summed) sweep histogram counts labelled pixels but none of
    them has a CAM score above the smallest threshold (all in bin ``b = 0``):
    every threshold then gives the same all-background seeds (all-zero CAMs)."""
    hist = np.asarray(hist)
    return bool(hist.sum() > 0 and hist[1:].sum() == 0)


def degenerate_seed_warnings(hist: Optional[np.ndarray],
                             empty_ids: Sequence[str],
                             num_images: int,
                             thresholds: Sequence[float],
                             source: str,
                             max_ids: int = 10) -> list:
    """Warning texts for seeds that cannot be right (the metric values are not
    changed; they are what the seeds give).

    * every pixel is background at every threshold
      (:func:`seeds_never_foreground`): the seeds are empty;
    * otherwise, images whose GT classes all have all-zero CAMs
      (:func:`gt_classes_without_seed`), listing up to ``max_ids`` ids.

    Args:
        hist: the summed (T + 1, C, C) sweep histogram (None: none).
        empty_ids: ids of the images without a seed for any of their GT classes.
        num_images: number of evaluated images.
        thresholds: the background thresholds.
        source: what the CAMs are, for the message (e.g. ``"CAM folder 'x'"``).
        max_ids: how many ids to list.

    Returns:
        list[str]: zero, one or two messages.
    """
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    out = []
    if hist is not None and seeds_never_foreground(hist):
        out.append(
            f'the seeds of {source} are empty: no CAM value of the '
            f'{num_images} image(s) exceeds the smallest background threshold '
            f'{thr[0]:g} on a labelled GT pixel, so every threshold gives the '
            'same all-background seeds and the same mIoU. The CAMs are all '
            'zero (or nearly): the wrong checkpoint or an untrained model was '
            'exported, or this is the wrong CAM folder. Check the checkpoint '
            'and re-export (tools/export_cams.py CONFIG CHECKPOINT --out '
            'CAM_DIR)')
    elif len(empty_ids):
        ids = [str(i) for i in empty_ids]
        shown = ', '.join(ids[:max_ids]) + (' ...' if len(ids) > max_ids
                                            else '')
        out.append(
            f'{len(ids)} of {num_images} image(s) of {source} have all-zero '
            'CAMs for every class of their GT mask (no seed pixel at any '
            f'threshold): {shown}. Check the image-level labels of these ids '
            'and how their CAMs were made (a partial or failed export, the '
            'wrong checkpoint)')
    return out
