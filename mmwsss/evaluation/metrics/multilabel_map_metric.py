from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmwsss.registry import METRICS


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
    %). Per-class APs are logged.

    Inputs per data sample (dicts): ``pred_score`` (Tensor (K,), any monotone score,
    e.g. sigmoid outputs) and ``gt_label`` (Tensor (K,) multi-hot; negative values
    mark ignored, e.g. *difficult*, labels).

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
            label = self._vec(ds['gt_label'])
            if score.shape != label.shape:
                raise ValueError(
                    f'{type(self).__name__}: pred_score has {score.shape[0]} '
                    f'classes but gt_label has {label.shape[0]}')
            self.results.append((score, label))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        from prettytable import PrettyTable
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
        table = PrettyTable()
        table.add_column('Class', names)
        table.add_column('AP', [
            'n/a' if np.isnan(ap) else f'{ap * 100:.2f}' for ap in aps
        ])
        print_log('per class AP:\n' + table.get_string(), logger='current')
        valid = ~np.isnan(aps)
        m_ap = float(aps[valid].mean() * 100) if valid.any() else float('nan')
        return OrderedDict(mAP=float(np.round(m_ap, 2)))
