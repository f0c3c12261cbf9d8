"""Offline seed evaluation of a CAM folder against the GT masks of a dataset split.

Used by ``tools/eval_seeds.py``. Every CAM file (:mod:`mmwsss.utils.cam_io`) of the
split is read once and added to a one-pass threshold-sweep histogram
(:func:`~mmwsss.evaluation.metrics.seed_sweep.sweep_histogram`), so all background
thresholds are scored for the price of one.

References: docs/methods/oaa.md, section 'References'.
"""
import logging
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from mmwsss.utils.cam_io import CAM_SUFFIX, cam_path, load_cam
from mmwsss.utils.io import (data_info_gt_path, data_info_id, read_label_png,
                             shown_ids)
from .functional import (format_class_table, format_percent, format_table,
                         percent_cells, percent_or_none, ratio)
from .metrics.seed_sweep import (check_thresholds, confusions_from_histogram,
                                 degenerate_seed_warnings,
                                 gt_classes_without_seed, seed_scores,
                                 sweep_histogram)

__all__ = [
    'evaluate_cam_dir', 'format_seed_table', 'scores_to_json',
    'threshold_key'
]


def threshold_key(t: float) -> str:
    """``0.05 -> '0.05'``, ``0.1 -> '0.10'``, ``0.125 -> '0.125'``."""
    s = f'{t:.2f}'
    return s if abs(float(s) - t) < 1e-9 else f'{t:g}'


#: How the seed tables print an undefined (NaN) score.
UNDEFINED = 'nan'


def format_seed_table(scores: Dict, per_threshold: bool = True) -> str:
    """Text tables of :func:`seed_scores` output: mIoU per threshold (optional) and
    IoU / precision / recall per class at the best threshold (percentages, ``nan``
    where undefined; :func:`~mmwsss.evaluation.functional.format_class_table`)."""
    parts = []
    if per_threshold:
        parts.append(format_table([
            ('threshold', [threshold_key(t) for t in scores['thresholds']]),
            ('mIoU', percent_cells(scores['miou'], UNDEFINED)),
        ]))
    extra = []
    q = scores.get('attention_quality')
    if q:
        extra = [
            ('Attn recall',
             ['-'] + percent_cells(q['per_class_recall'].values(), UNDEFINED)),
            ('Attn noise',
             ['-'] + percent_cells(q['per_class_noise'].values(), UNDEFINED)),
        ]
    parts.append(f"per class at the best threshold "
                 f"{threshold_key(scores['best_threshold'])} "
                 f"(mIoU {format_percent(scores['best_miou'], UNDEFINED)}):\n" +
                 format_class_table(scores, UNDEFINED, extra))
    return '\n'.join(parts)


def _percents(values) -> list:
    return [percent_or_none(v) for v in values]


def scores_to_json(scores: Dict) -> Dict:
    """JSON-ready summary of :func:`seed_scores` output (percentages; NaN ->
    ``None``)."""
    names = list(scores['class_names'])
    return dict(
        best_threshold=scores['best_threshold'],
        mIoU=percent_or_none(scores['best_miou']),
        mIoU_per_threshold={
            threshold_key(t): v
            for t, v in zip(scores['thresholds'], _percents(scores['miou']))
        },
        per_class={
            key: dict(zip(names, _percents(scores[key])))
            for key in ('iou', 'precision', 'recall')
        },
        class_names=names,
        **_quality_json(scores),
        **({'warnings': list(scores['warnings'])} if scores.get('warnings')
           else {}))


def _quality_json(scores: Dict) -> Dict:
    q = scores.get('attention_quality')
    if not q:
        return {}
    return dict(attention_quality=dict(
        recall=percent_or_none(q['recall']),
        noise=percent_or_none(q['noise']),
        per_class_recall={
            k: percent_or_none(v)
            for k, v in q['per_class_recall'].items()
        },
        per_class_noise={
            k: percent_or_none(v)
            for k, v in q['per_class_noise'].items()
        }))



def attention_counts(rec, gt: np.ndarray, ignore_index: int,
                     out: np.ndarray, rel_threshold: float = 0.5) -> np.ndarray:
    """Add one image's attention-quality counts to ``out`` (K, 3).

    OAA [T] §4.3 (Tab. 11, 13): each listed class map is binarised at
    ``rel_threshold`` (50 %) of its maximum (B) and compared with the GT mask of that
    class (G), ignoring ``ignore_index`` pixels: counts ``|B & G|``, ``|B|``, ``|G|``.
    """
    valid = gt != ignore_index
    for cam, c in zip(rec.cams, rec.labels):
        c = int(c)
        g = (gt == c + 1) & valid
        peak = float(cam.max())
        b = (cam >= rel_threshold * peak) & valid if peak > 0 else \
            np.zeros_like(g)
        out[c, 0] += int((b & g).sum())
        out[c, 1] += int(b.sum())
        out[c, 2] += int(g.sum())
    return out


def attention_quality(counts: np.ndarray, class_names: Sequence[str]) -> Dict:
    """Recall and noise (1 - precision) of the attention maps binarised at half
    their maximum: pooled over all pixels (the [T] Tab. 11 / Tab. 13 "avg"
    convention) and per class (NaN for a class without maps or GT pixels)."""
    tp, b, g = counts[:, 0].astype(float), counts[:, 1].astype(float), \
        counts[:, 2].astype(float)
    recall = ratio(tp, g)
    noise = 1 - ratio(tp, b)
    return dict(
        recall=ratio(tp.sum(), g.sum()),
        noise=1 - ratio(tp.sum(), b.sum()),
        per_class_recall=dict(zip(class_names, recall.tolist())),
        per_class_noise=dict(zip(class_names, noise.tolist())))


def evaluate_cam_dir(cam_dir: str,
                     dataset,
                     thresholds: Optional[Sequence[float]] = None,
                     ignore_index: Optional[int] = None,
                     progress: bool = True,
                     max_listed: int = 10) -> Dict:
    """Score the seeds of every CAM file of a dataset split over a threshold sweep.

    Args:
        cam_dir: folder of ``<img_id>.npz`` CAM files.
        dataset: a built MMSeg-style dataset (``get_data_info``, ``metainfo``) whose
            items have ``img_id`` (or ``img_path``) and a GT mask
            (``gt_seg_map_path``; for plain MMSeg datasets ``seg_map_path``).
        thresholds: background thresholds (default 0.05, 0.10, ..., 0.95).
        ignore_index: GT label to skip (default: ``dataset.ignore_index`` or 255).
        progress: show a progress bar.
        max_listed: how many ids a warning lists.

    Returns:
        dict: :func:`seed_scores` output plus ``num_images``, ``cam_dir``,
        ``empty_ids`` (ids whose GT classes all have all-zero CAMs) and
        ``warnings`` (texts, also logged at WARNING level): the seeds are empty
        (no CAM value above the smallest threshold, so every threshold gives the
        same result), or some images have no seed for any of their GT classes
        (:func:`~mmwsss.evaluation.metrics.seed_sweep.degenerate_seed_warnings`).
        The scores are those of the seeds either way.

    Raises:
        FileNotFoundError: the CAM folder is missing, or ids of the split have no
            CAM file (one error listing them, before any computation).
        ValueError: the dataset has no GT masks, a CAM file has another number of
            classes than the dataset, a CAM is not at the GT size, or a GT label is
            out of range. Messages name the image id and file.
    """
    thr = check_thresholds(thresholds)
    if not osp.isdir(cam_dir):
        raise FileNotFoundError(
            f'CAM folder {cam_dir!r} does not exist: export the CAMs of this '
            'split first (one <img_id>.npz per image, see mmwsss/utils/cam_io.py)')
    if ignore_index is None:
        ignore_index = int(getattr(dataset, 'ignore_index', 255))
    classes = list(dataset.metainfo['classes'])
    k = len(classes) - 1
    split = getattr(dataset, 'ann_file', '') or type(dataset).__name__
    n = len(dataset)
    if n == 0:
        raise ValueError(f'the dataset split {split!r} has no images')

    items = []
    no_gt = []
    for i in range(n):
        info = dataset.get_data_info(i)
        img_id = data_info_id(info)
        gt_path = data_info_gt_path(info)
        if gt_path is None:
            no_gt.append(img_id)
        items.append((img_id, gt_path))
    if no_gt:
        raise ValueError(
            f'{type(dataset).__name__} (split {split!r}) has no GT masks for '
            f'{len(no_gt)} id(s): {shown_ids(no_gt)}. Seed evaluation needs GT '
            'masks: set data_prefix.seg_map_path (e.g. SegmentationClass) in the '
            'dataset config or pick a split that has masks (--split)')

    present = set(os.listdir(cam_dir))
    missing = [
        img_id for img_id, _ in items
        if (img_id + CAM_SUFFIX not in present if os.sep not in img_id else
            not osp.isfile(cam_path(cam_dir, img_id)))
    ]
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} of {n} id(s) of the split {split!r} have no CAM file '
            f'in {cam_dir!r}: {shown_ids(missing)}. Export CAMs for every id of '
            'this split, or evaluate the split the CAMs were made for (--split)')

    hist = None
    empty_ids = []  # images whose GT classes all have all-zero CAMs
    quality = np.zeros((k, 3), np.int64)  # per class: |B & G|, |B|, |G|
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(n)
    for img_id, gt_path in items:
        path = cam_path(cam_dir, img_id)
        rec = load_cam(path)
        if rec.num_classes != k:
            raise ValueError(
                f'CAM file {path!r} (id {img_id!r}) has num_classes='
                f'{rec.num_classes} but the dataset has {k} foreground classes: '
                'these CAMs were made for another dataset; use the matching '
                'config or re-export the CAMs')
        if not osp.isfile(gt_path):
            raise FileNotFoundError(
                f'GT mask {gt_path!r} of id {img_id!r} does not exist')
        gt = read_label_png(gt_path)
        if gt.ndim != 2:
            raise ValueError(
                f'GT mask {gt_path!r} of id {img_id!r} has shape {gt.shape}: '
                'expected a single-channel (palette) label PNG')
        if rec.shape != gt.shape:
            raise ValueError(
                f'CAM of id {img_id!r} ({path!r}) has size {rec.shape} but its '
                f'GT mask {gt_path!r} has size {gt.shape}: CAMs must be saved at '
                'the original image size (resize them back before save_cam)')
        dense = rec.dense()
        try:
            h = sweep_histogram(dense, gt, thr, k, ignore_index)
        except ValueError as e:
            raise ValueError(f'id {img_id!r} (CAM {path!r}, GT {gt_path!r}): '
                             f'{e}') from e
        hist = h if hist is None else hist + h
        if gt_classes_without_seed(dense, gt, ignore_index):
            empty_ids.append(img_id)
        attention_counts(rec, gt, ignore_index, quality)
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    scores = seed_scores(confusions_from_histogram(hist), thr, classes)
    scores['attention_quality'] = attention_quality(quality, classes[1:])
    scores['num_images'] = n
    scores['cam_dir'] = cam_dir
    scores['empty_ids'] = empty_ids
    scores['warnings'] = degenerate_seed_warnings(
        hist, empty_ids, n, thr, f'the CAM folder {cam_dir!r}', max_listed)
    for msg in scores['warnings']:
        print_log(msg, logger='current', level=logging.WARNING)
    return scores
