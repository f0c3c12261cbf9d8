"""Metrics of mmwsss: seed mIoU over a background-threshold sweep, multi-label
classification mAP, and MMSeg's IoU metric writing VOC palette PNGs."""
from .iou_metric import PaletteIoUMetric
from .multilabel_map_metric import MultiLabelMAPMetric, average_precision
from .seed_iou_metric import SeedIoUMetric
from .seed_sweep import (DEFAULT_THRESHOLDS, check_thresholds,
                         confusions_from_histogram, per_threshold_loop,
                         seed_scores, sweep_histogram)

__all__ = [
    'PaletteIoUMetric', 'SeedIoUMetric', 'MultiLabelMAPMetric',
    'average_precision',
    'DEFAULT_THRESHOLDS', 'check_thresholds', 'sweep_histogram',
    'confusions_from_histogram', 'seed_scores', 'per_threshold_loop'
]
