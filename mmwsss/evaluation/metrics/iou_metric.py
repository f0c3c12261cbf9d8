"""MMSeg's IoUMetric, writing VOC palette label PNGs for ``tools/test.py --out``."""
import os.path as osp
from typing import Sequence

import numpy as np
from mmseg.evaluation import IoUMetric as MMSegIoUMetric

from mmwsss.registry import METRICS
from mmwsss.utils.io import save_png_atomic, voc_palette


@METRICS.register_module()
class PaletteIoUMetric(MMSegIoUMetric):
    """:class:`mmseg.evaluation.IoUMetric` with the predicted label maps written as
    the VOC format: single-channel **palette** ('P') PNGs with the VOC colour map, one
    ``<id>.png`` per image, each written atomically (temporary file, then rename).

    MMSeg's metric writes greyscale ('L') PNGs; VOC labels, the pseudo labels of
    ``tools/make_pseudo_labels.py`` and the VOC test server use palette PNGs (the
    label values are the same: 0 = background, 1..K classes). Everything else
    (metrics, ``format_only``, ``reduce_zero_label``) is MMSeg's. ``tools/test.py
    --out DIR`` uses this metric for every IoUMetric of ``test_evaluator``.

    Args:
        **kwargs: the arguments of :class:`mmseg.evaluation.IoUMetric`.
    """

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        out_dir, self.output_dir = self.output_dir, None
        try:
            super().process(data_batch, data_samples)
        finally:
            self.output_dir = out_dir
        if out_dir is None:
            return
        for data_sample in data_samples:
            pred = data_sample['pred_sem_seg']['data'].squeeze().cpu().numpy()
            if data_sample.get('reduce_zero_label', False):
                pred = pred + 1
            stem = osp.splitext(osp.basename(data_sample['img_path']))[0]
            save_png_atomic(
                osp.abspath(osp.join(out_dir, f'{stem}.png')),
                pred.astype(np.uint8), voc_palette())
