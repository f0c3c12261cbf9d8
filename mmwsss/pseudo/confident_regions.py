"""irn confident regions: fg from a high, bg from a low background threshold."""
import numbers
from typing import Optional

import numpy as np

from mmwsss.registry import PSEUDO_LABEL_RULES
from mmwsss.utils.cam_io import CamRecord
from .base import IGNORE_INDEX, BasePseudoLabelRule, labels_to_ids


@PSEUDO_LABEL_RULES.register_module()
class ConfidentRegions(BasePseudoLabelRule):
    """Confident foreground / background labels of irn's ``cam_to_ir_label.py``
    (Ahn et al., CVPR 2019; jiwoon-ahn/irn ``step/cam_to_ir_label.py``; VWL refines
    its CAMs with IRNet's default settings, Ru et al., IJCV 2022, §4.1).

    * ``fg = CRF(argmax([fg_threshold, cams]))`` -- confident foreground;
    * ``bg = CRF(argmax([bg_threshold, cams]))`` -- a low background score, so
      background only where even it wins;
    * ``out = fg``; ``out[fg == 0] = 255``; ``out[(fg == 0) & (bg == 0)] = 0``.

    So a pixel is a class where the high threshold says so, background where
    the low threshold says background, and ignored in between. The CRF is irn's
    ``crf_inference_label`` (``crf='irn_label'``: t = 10, gt_prob = 0.7,
    Gaussian 3/3, bilateral 50/5/10) on the index map over ``[bg] + listed
    classes``; ``crf=None`` uses the plain argmaxes.

    Args:
        fg_threshold (float): background score for the foreground map. 0.30
            (irn ``conf_fg_thres``).
        bg_threshold (float): background score for the background map. 0.05
            (irn ``conf_bg_thres``); must not exceed ``fg_threshold``.
        crf: a preset name (default ``'irn_label'``), a dict, a ``DenseCRF``
            or None.
    """

    def __init__(self,
                 fg_threshold: float = 0.30,
                 bg_threshold: float = 0.05,
                 crf='irn_label'):
        super().__init__(crf=crf)
        for name, value in (('fg_threshold', fg_threshold),
                            ('bg_threshold', bg_threshold)):
            if not (isinstance(value, numbers.Real) and np.isfinite(value)):
                raise ValueError(f'ConfidentRegions: {name} must be a finite '
                                 f'number, got {value!r}')
        if bg_threshold > fg_threshold:
            raise ValueError(f'ConfidentRegions: bg_threshold '
                             f'({bg_threshold}) must not exceed fg_threshold '
                             f'({fg_threshold})')
        self.fg_threshold = float(fg_threshold)
        self.bg_threshold = float(bg_threshold)

    def __repr__(self):
        return (f'{self.__class__.__name__}(fg_threshold={self.fg_threshold}, '
                f'bg_threshold={self.bg_threshold}, crf={self.crf!r})')

    def _labels(self, record, image, threshold):
        cams = np.asarray(record.cams, np.float32)
        scores = np.concatenate(
            [np.full((1, ) + record.shape, threshold, np.float32), cams])
        index = np.argmax(scores, axis=0)
        if self.crf is not None:
            index = self.crf.infer_labels(image, index, len(record.labels) + 1)
        return labels_to_ids(index, record)

    def generate(self, record: CamRecord, image: Optional[np.ndarray],
                 saliency: Optional[np.ndarray]) -> np.ndarray:
        if len(record.labels) == 0:
            return np.zeros(record.shape, np.uint8)
        fg = self._labels(record, image, self.fg_threshold)
        bg = self._labels(record, image, self.bg_threshold)
        out = fg.copy()
        out[fg == 0] = IGNORE_INDEX
        out[(fg == 0) & (bg == 0)] = 0
        return out
