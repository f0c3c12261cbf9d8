import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmwsss.registry import METRICS
from ..functional import round_percent
from .seed_sweep import (check_thresholds, confusions_from_histogram,
                         degenerate_seed_warnings, gt_classes_without_seed,
                         seed_scores, sweep_histogram)


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _field(ds: dict, key: str):
    """``ds[key]['data']`` for a PixelData turned into a dict; ``ds[key]`` for a
    bare tensor."""
    value = ds[key]
    if isinstance(value, dict):
        return value['data']
    if hasattr(value, 'data') and not isinstance(value, (torch.Tensor,
                                                         np.ndarray)):
        return value.data
    return value


@METRICS.register_module()
class SeedIoUMetric(BaseMetric):
    """mIoU of CAM seeds over a sweep of background thresholds, in one pass.

    The seed at background threshold ``t`` is ``argmax([t, cam_0, ..., cam_{K-1}])``
    (irn / VWL / EDAM rule, ties to background, see
    :meth:`mmwsss.utils.cam_io.CamRecord.seed`). With ``m`` the top CAM score of a
    pixel and ``a`` its top class, the seed is ``a`` if ``m > t`` else background, so
    a pixel is summarised by ``(b, gt, a)``, ``b`` = number of thresholds below
    ``m``. :meth:`process` counts these triples of each image into a
    ``(T + 1, C, C)`` histogram with one ``np.bincount``; :meth:`compute_metrics`
    sums the histograms and recovers all T confusion matrices with a suffix / prefix
    sum over ``b`` (:mod:`mmwsss.evaluation.metrics.seed_sweep`). Scoring 19
    thresholds thus costs about as much as scoring one.

    Each sample's histogram is kept in sparse form (non-zero bins only, a few hundred
    entries) so memory stays small for large splits and many classes; the per-sample
    results work with MMEngine's distributed ``collect_results``.

    Inputs per data sample (dicts, as MMEngine passes them to metrics):

    - ``pred_cams``: ``{'data': Tensor (K, H, W)}`` CAMs at the original image size,
      zeros for classes without a map (a bare tensor is accepted too);
    - ``gt_sem_seg``: ``{'data': Tensor (1, H, W)}`` GT labels (0 = bg, 1..K,
      ``ignore_index``).

    Returned metrics (with the default prefix ``seed/``): ``mIoU`` (best over the
    thresholds, %), ``best_threshold`` and ``mIoU@<t>`` for every threshold. A
    per-class table (IoU / precision / recall at the best threshold) is logged.

    Degenerate seeds are logged at WARNING level (the values are unchanged):
    no CAM value above the smallest threshold in the whole evaluation (every
    threshold gives the same all-background seeds: an untrained model, a broken
    checkpoint), or samples whose GT classes all have all-zero CAMs (up to
    ``max_listed`` ids;
    :func:`~mmwsss.evaluation.metrics.seed_sweep.degenerate_seed_warnings`).

    Args:
        thresholds (Sequence[float], optional): strictly increasing background
            thresholds in [0, 1]. Defaults to 0.05, 0.10, ..., 0.95.
        ignore_index (int): GT label that is ignored. Defaults to 255.
        cam_key (str): data-sample key of the CAMs. Defaults to ``'pred_cams'``.
        collect_device (str): ``'cpu'`` or ``'gpu'`` for distributed collection.
        prefix (str): metric name prefix. Defaults to ``'seed'``.
        max_listed (int): ids listed by the warning about samples without
            seeds. Defaults to 10.
    """
    default_prefix: Optional[str] = 'seed'

    def __init__(self,
                 thresholds: Optional[Sequence[float]] = None,
                 ignore_index: int = 255,
                 cam_key: str = 'pred_cams',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = 'seed',
                 max_listed: int = 10,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        self.thresholds = check_thresholds(thresholds)
        self.ignore_index = ignore_index
        self.cam_key = cam_key
        self.max_listed = max_listed

    def _num_fg_classes(self) -> Optional[int]:
        if self.dataset_meta and self.dataset_meta.get('classes'):
            return len(self.dataset_meta['classes']) - 1
        return None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Add the sweep histogram of each sample (sparse) to ``self.results``."""
        expected = self._num_fg_classes()
        for ds in data_samples:
            cams = _to_numpy(_field(ds, self.cam_key))
            gt = _to_numpy(_field(ds, 'gt_sem_seg'))
            if gt.ndim == 3:
                gt = gt[0]
            k = cams.shape[0]
            name = ds.get('img_id', ds.get('img_path', '?')) if isinstance(
                ds, dict) else '?'
            if expected is not None and k != expected:
                raise ValueError(
                    f'{type(self).__name__}: sample {name!r} has {k} CAMs but '
                    f'the dataset has {expected} foreground classes; '
                    f'{self.cam_key} must be dense (K, H, W) with zeros for '
                    'absent classes')
            try:
                hist = sweep_histogram(cams, gt, self.thresholds, k,
                                       self.ignore_index)
            except ValueError as e:
                raise ValueError(
                    f'{type(self).__name__}: sample {name!r}: {e}') from e
            flat = hist.reshape(-1)
            nz = np.flatnonzero(flat)
            index_dtype = np.int32 if flat.size < 2**31 else np.int64
            # 4th item: the sample's name when none of its GT classes has a
            # non-zero CAM (for the warning of compute_metrics), else None
            empty = str(name) if gt_classes_without_seed(
                cams, gt, self.ignore_index) else None
            self.results.append((k + 1, nz.astype(index_dtype), flat[nz],
                                 empty))

    def total_histogram(self, results: List[Tuple]) -> np.ndarray:
        """Sum the sparse per-sample histograms into a dense (T + 1, C, C)."""
        sizes = {r[0] for r in results}
        if len(sizes) != 1:
            raise ValueError(f'{type(self).__name__}: samples disagree on the '
                             f'number of classes {sorted(sizes)}')
        c = sizes.pop()
        t1 = self.thresholds.shape[0] + 1
        idx = np.concatenate([r[1] for r in results]).astype(np.int64)
        counts = np.concatenate([r[2] for r in results]).astype(np.int64)
        total = np.zeros(t1 * c * c, np.int64)
        np.add.at(total, idx, counts)
        return total.reshape(t1, c, c)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Best mIoU (%), its threshold and the mIoU of every threshold."""
        from mmwsss.evaluation.seed_eval import format_seed_table, threshold_key
        hist = self.total_histogram(results)
        c = hist.shape[1]
        names = None
        if self.dataset_meta and self.dataset_meta.get('classes'):
            names = list(self.dataset_meta['classes'])
            if len(names) != c:
                names = None
        scores = seed_scores(
            confusions_from_histogram(hist), self.thresholds, names)
        print_log(
            'seed mIoU per background threshold and per class:\n' +
            format_seed_table(scores),
            logger='current')
        empty = [r[3] for r in results if len(r) > 3 and r[3] is not None]
        for msg in degenerate_seed_warnings(
                hist, empty, len(results), self.thresholds,
                f'{type(self).__name__} ({self.cam_key})', self.max_listed):
            print_log(msg, logger='current', level=logging.WARNING)
        metrics = OrderedDict()
        metrics['mIoU'] = round_percent(scores['best_miou'])
        metrics['best_threshold'] = float(scores['best_threshold'])
        for t, v in zip(self.thresholds, scores['miou']):
            metrics[f'mIoU@{threshold_key(t)}'] = round_percent(v)
        return metrics
