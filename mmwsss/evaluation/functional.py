"""Segmentation scores from confusion matrices, and how mmwsss prints them.

The one implementation behind the seed evaluation (:mod:`.metrics.seed_sweep`,
:mod:`.seed_eval`, ``tools/eval_seeds.py``), the pseudo-label evaluation
(:mod:`mmwsss.pseudo.job`, ``tools/make_pseudo_labels.py``), the metrics' logged
tables and the demo summary.

Conventions (those of MMSeg's ``IoUMetric``, ``mmseg/evaluation/metrics/iou_metric.py``):

* a confusion matrix has **GT rows and predicted columns**: ``conf[g, p]`` counts the
  pixels with GT label ``g`` predicted ``p``; label 0 is the background, labels equal to
  ``ignore_index`` (255) are skipped;
* a per-class score whose denominator is zero is **NaN**, never 0: the IoU of a class
  absent from both the GT and the prediction, the precision of a class never predicted,
  the recall of a class absent from the GT. A class that is only predicted has IoU 0
  (and precision 0);
* a mean over classes (mIoU) is the mean of the defined (non-NaN) values, as
  ``np.nanmean``; it is NaN when no value is defined;
* printed scores are percentages with two decimals; an undefined score is printed as
  a word chosen by the caller (``n/a`` by default), JSON files hold percentages rounded
  to 4 decimals with ``null`` for undefined ones.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    'SCORE_COLUMNS', 'confusion_matrix', 'ratio', 'per_class_scores',
    'pixel_accuracy', 'nanmean', 'is_undefined', 'format_percent', 'percent_cells',
    'percent_or_none', 'round_percent', 'format_table', 'format_class_table'
]

#: The per-class score columns of the result tables: (key of the scores, header).
SCORE_COLUMNS: Tuple[Tuple[str, str], ...] = (('iou', 'IoU'),
                                              ('precision', 'Precision'),
                                              ('recall', 'Recall'))


# ------------------------------------------------------------ confusion matrices
def confusion_matrix(pred: np.ndarray,
                     gt: np.ndarray,
                     num_classes: int,
                     ignore_index: Optional[int] = 255) -> np.ndarray:
    """Confusion matrix of one label map (or of any arrays of labels), one
    ``np.bincount``.

    Pixels whose GT **or** prediction equals ``ignore_index`` are skipped (a pseudo
    label marks the pixels it leaves unlabelled with 255, like the GT). Matrices of
    several images add up.

    Args:
        pred: predicted integer labels, any shape.
        gt: GT integer labels, the shape of ``pred``.
        num_classes: C, the number of classes *including* the background (the labels
            are 0 .. C - 1).
        ignore_index: label skipped in either array; ``None``: no label is skipped.

    Returns:
        np.ndarray: int64 (C, C), rows GT, columns prediction.

    Raises:
        ValueError: the shapes differ, or a label (other than ``ignore_index``) is
            outside 0 .. C - 1.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction shape {pred.shape} differs from GT shape '
                         f'{gt.shape}')
    c = int(num_classes)
    if ignore_index is None:
        g = gt.reshape(-1).astype(np.int64)
        p = pred.reshape(-1).astype(np.int64)
    else:
        both = (gt != ignore_index) & (pred != ignore_index)
        g = gt[both].astype(np.int64)
        p = pred[both].astype(np.int64)
    if g.size:
        lo = min(int(g.min()), int(p.min()))
        hi = max(int(g.max()), int(p.max()))
        if lo < 0 or hi >= c:
            bad = lo if lo < 0 else hi
            ignore = '' if ignore_index is None else f', ignore {ignore_index}'
            raise ValueError(f'label value {bad} is out of range for {c} classes '
                             f'(0..{c - 1}{ignore})')
    return np.bincount(g * c + p, minlength=c * c).reshape(c, c)


# ------------------------------------------------------------------ scores
def ratio(num, den) -> Union[float, np.ndarray]:
    """``num / den`` in float64, NaN where ``den`` is 0 (an undefined score, not
    0), without a division warning.

    Returns:
        float for scalar inputs, else an array (broadcast shape).
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        out = np.where(den != 0, num / den, np.nan)
    return float(out) if out.ndim == 0 else out


def per_class_scores(confusion: np.ndarray) -> Dict[str, np.ndarray]:
    """IoU, precision and recall of every class from a confusion matrix.

    ``IoU = TP / (TP + FP + FN)``, ``precision = TP / (TP + FP)``,
    ``recall = TP / (TP + FN)``; NaN where the denominator is 0 (see the module
    docstring).

    Args:
        confusion: (..., C, C) confusion matrices, rows GT, columns prediction (e.g.
            one per background threshold).

    Returns:
        dict: ``iou``, ``precision``, ``recall``: float64 arrays (..., C), fractions
        in [0, 1] or NaN.
    """
    conf = np.asarray(confusion, dtype=np.float64)
    if conf.ndim < 2 or conf.shape[-1] != conf.shape[-2]:
        raise ValueError(f'confusion must be (..., C, C), got {conf.shape}')
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    n_gt = conf.sum(-1)
    n_pred = conf.sum(-2)
    return dict(
        iou=ratio(tp, n_gt + n_pred - tp),
        precision=ratio(tp, n_pred),
        recall=ratio(tp, n_gt))


def pixel_accuracy(confusion: np.ndarray) -> Union[float, np.ndarray]:
    """Share of the counted pixels whose prediction is right (MMSeg's ``aAcc``).

    Args:
        confusion: (..., C, C) confusion matrices.

    Returns:
        float for one (C, C) matrix (NaN when it counts no pixel), else an array
        (...,).
    """
    conf = np.asarray(confusion, dtype=np.float64)
    return ratio(np.diagonal(conf, axis1=-2, axis2=-1).sum(-1),
                 conf.sum((-2, -1)))


def nanmean(values: np.ndarray, axis: int = -1) -> Union[float, np.ndarray]:
    """Mean of the defined (non-NaN) values along ``axis``: NaN values are left
    out of both the sum and the count, as ``np.nanmean`` (same result), and an
    all-NaN slice gives NaN without a warning. This is how mIoU is taken over the
    classes.

    Returns:
        float for a 1-D input, else an array without ``axis``.
    """
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    counts = defined.sum(axis)
    mean = np.where(counts > 0,
                    np.where(defined, values, 0).sum(axis) /
                    np.maximum(counts, 1), np.nan)
    return float(mean) if mean.ndim == 0 else mean


# ---------------------------------------------------------------- percentages
def is_undefined(value) -> bool:
    """True for ``None`` and NaN (an undefined score)."""
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def format_percent(value,
                   undefined: str = 'n/a',
                   digits: int = 2,
                   fraction: bool = True) -> str:
    """A score as printed in the tables: ``0.468 -> '46.80'``.

    Args:
        value: a fraction in [0, 1] (``fraction=False``: already a percentage), NaN
            or ``None``.
        undefined: the text of an undefined (NaN / ``None``) score, e.g. ``'n/a'``
            or ``'nan'``.
        digits: decimals.
        fraction: multiply by 100.
    """
    if is_undefined(value):
        return undefined
    value = float(value)
    return f'{100 * value if fraction else value:.{digits}f}'


def percent_cells(values: Sequence, undefined: str = 'n/a') -> list:
    """:func:`format_percent` of every value (a table column)."""
    return [format_percent(v, undefined) for v in values]


def percent_or_none(value, ndigits: int = 4) -> Optional[float]:
    """A fraction as a JSON-ready percentage: ``round(100 * value, ndigits)``
    (Python's correctly rounded ``round``); ``None`` for NaN / ``None``."""
    if is_undefined(value):
        return None
    return round(float(value) * 100, ndigits)


def round_percent(value, ndigits: int = 2) -> float:
    """A fraction as a metric value of MMEngine's log: ``np.round(100 * value,
    ndigits)`` as MMSeg's ``IoUMetric`` rounds its metrics; NaN stays NaN."""
    return float(np.round(float(value) * 100, ndigits))


# ------------------------------------------------------------------- tables
def format_table(columns: Sequence[Tuple[str, Sequence]]) -> str:
    """A PrettyTable of ``(header, cells)`` columns (cells shown as they are:
    format numbers first, e.g. with :func:`percent_cells`)."""
    from prettytable import PrettyTable
    table = PrettyTable()
    for header, cells in columns:
        table.add_column(header, list(cells))
    return table.get_string()


def format_class_table(scores: Dict,
                       undefined: str = 'n/a',
                       extra_columns: Sequence[Tuple[str, Sequence]] = ()
                       ) -> str:
    """The per-class result table: ``Class``, ``IoU``, ``Precision``, ``Recall``
    (percentages, :data:`SCORE_COLUMNS`), then ``extra_columns``.

    Args:
        scores: ``class_names`` and the per-class fractions ``iou``,
            ``precision``, ``recall`` (e.g. :func:`per_class_scores` plus names).
        undefined: the text of an undefined score.
        extra_columns: more ``(header, cells)`` columns, cells already formatted.
    """
    columns = [('Class', list(scores['class_names']))]
    columns += [(name, percent_cells(scores[key], undefined))
                for key, name in SCORE_COLUMNS]
    columns += list(extra_columns)
    return format_table(columns)
