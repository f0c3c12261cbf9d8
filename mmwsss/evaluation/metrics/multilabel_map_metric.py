from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmwsss.registry import METRICS
from ..functional import format_table, percent_cells


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Non-interpolated average precision of one class.

    Samples are ranked by descending score (stable: ties keep the input order);
    AP is the mean of the precision at the rank of each positive. Samples with a
    negative label (e.g. ``-1`` for *difficult*) are left out.

    Args:
        scores: (N,) scores.
        labels: (N,) 1 = positive, 0 = negative, < 0 = ignored.

    Returns:
        float: AP in [0, 1], NaN when there is no positive.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    keep = labels >= 0
    scores, labels = scores[keep], labels[keep] > 0.5
    if not labels.any():
        return float('nan')
    order = np.argsort(-scores, kind='stable')
    hits = labels[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, hits.size + 1)
    return float(precision[hits].mean())


@METRICS.register_module()
class MultiLabelMAPMetric(BaseMetric):
    """Mean average precision of image-level multi-label classification.

    For each class, images are ranked by ``pred_score`` and the non-interpolated AP
    (mean precision at the rank of each positive) is computed; classes without any
    positive image are skipped. ``mAP`` is the mean over the remaining classes (in
    %, rounded to 2 decimals), logged as ``cls/mAP``. Per-class APs are logged.

    Inputs per data sample (dicts): ``pred_score`` (Tensor (K,), any monotone score,
    e.g. sigmoid outputs) and the multi-hot target (Tensor (K,); negative values
    mark ignored, e.g. *difficult*, labels): ``gt_score`` if the sample has one (the
    MMPretrain field, which :class:`~mmwsss.datasets.transforms.PackWSSSInputs` also
    sets), else ``gt_label`` (the mmwsss field). Hence the metric reads mmwsss and
    MMPretrain multi-label data samples alike.

    **Why not MMPretrain's** ``AveragePrecision``: the samples packed by
    ``PackWSSSInputs`` carry ``gt_score``, so ``dict(type='mmpretrain.AveragePrecision',
    prefix='cls')`` works in mmwsss configs too, and it computes the same per-class
    AP (mean precision at the positives' ranks, samples labelled -1 left out)
    when every class has a positive image and no positive shares its score with a
    negative (e.g. the full VOC train / val splits with unsaturated scores). It
    differs in two cases that occur in WSSS evaluation
    (``tests/test_evaluation/test_cls_metrics.py`` measures both):

    * a class without any positive image gets AP 0 and still counts in the mean.
      A class absent from the evaluated images says nothing about the classifier;
      on a subset of a split (a short validation set, a data subset on a CI or
      debugging run, a COCO subset with rare classes) MMPretrain's mAP is this
      metric's times ``(K - m) / K`` for ``m`` absent classes (5 classes, one
      absent: 60.86 instead of 76.08). Here the class is reported as ``n/a`` and
      left out of the mean;
    * tied scores are ranked by an unstable ``torch.argsort``, so when a positive
      and a negative share a score (float32 sigmoid saturates to exactly 1.0 for
      logits above about 16.7, e.g. on the training images the seeds are
      evaluated on) the AP depends on the sort implementation and even on the
      number of images: on CPU, the same six tied top images (3 positive) give
      AP 50.00 followed by 10 negatives, 75.56 by 30 and 72.22 by 60. Here ties
      keep the order of the images in the dataset (a stable sort): 50.00 in all
      three cases.

    MMPretrain has no option for either, so mmwsss configs use this metric; use
    ``mmpretrain.AveragePrecision`` (or ``mmpretrain.MultiLabelMetric``) on the same
    data samples where its conventions are wanted.

    Args:
        collect_device (str): ``'cpu'`` or ``'gpu'`` for distributed collection.
        prefix (str): metric name prefix. Defaults to ``'cls'``.
    """
    default_prefix: Optional[str] = 'cls'

    def __init__(self,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = 'cls',
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)

    @staticmethod
    def _vec(x) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().float().numpy()
        return np.asarray(x, dtype=np.float32).reshape(-1)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            score = self._vec(ds['pred_score'])
            key = 'gt_score' if 'gt_score' in ds else 'gt_label'
            label = self._vec(ds[key])
            if score.shape != label.shape:
                raise ValueError(
                    f'{type(self).__name__}: pred_score has {score.shape[0]} '
                    f'classes but {key} has {label.shape[0]}')
            self.results.append((score, label))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        scores = np.stack([r[0] for r in results])
        labels = np.stack([r[1] for r in results])
        k = scores.shape[1]
        aps = np.array([
            average_precision(scores[:, c], labels[:, c]) for c in range(k)
        ])
        names = None
        if self.dataset_meta and self.dataset_meta.get('classes'):
            names = list(self.dataset_meta['classes'])
            if len(names) == k + 1:  # segmentation classes: drop background
                names = names[1:]
            elif len(names) != k:
                names = None
        if names is None:
            names = [f'class {c}' for c in range(k)]
        table = format_table([('Class', names), ('AP', percent_cells(aps))])
        print_log('per class AP:\n' + table, logger='current')
        valid = ~np.isnan(aps)
        m_ap = float(aps[valid].mean() * 100) if valid.any() else float('nan')
        return OrderedDict(mAP=float(np.round(m_ap, 2)))
