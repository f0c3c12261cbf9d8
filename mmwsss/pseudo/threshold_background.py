"""Constant background score: ``label = argmax([τ, cams])`` (irn / VWL / EDAM without
CRF)."""
import numbers
from typing import Optional

import numpy as np

from mmwsss.registry import PSEUDO_LABEL_RULES
from mmwsss.utils.cam_io import CamRecord
from .base import BasePseudoLabelRule, labels_to_ids, one_minus_max_probs


def _softmax(x: np.ndarray, axis: int = 0) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


@PSEUDO_LABEL_RULES.register_module()
class ThresholdBackground(BasePseudoLabelRule):
    """Pseudo labels from CAMs with a constant background score.

    Without CRF (irn ``step/eval_cam.py``, VWL's rulixiang/vwe ``v2/eval_cam.py``,
    EDAM Table 5/6 with a "carefully tuned" threshold, Wu et al., CVPR 2021,
    §4.5.1): a plane of value ``threshold`` is prepended to
    the CAMs of the listed classes and every pixel takes the argmax,
    ``label = argmax([threshold, cams])``. Ties go to the lower index, i.e. to
    background, then to the lower class (``np.argmax``; same as
    :meth:`CamRecord.seed`). No pixel is ignored.

    With a CRF, three unaries are offered (``crf_unary``):

    * ``'softmax'`` -- VWL's rulixiang/vwe ``v2/crf.py``: ``softmax([threshold,
      cams])`` over the channels -> ``unary_from_softmax`` -> mean field ->
      argmax. Use with ``crf='vwl'`` and ``threshold=0.15`` for VWL's "+CRF".
    * ``'one_minus_max'`` -- PSA ``crf_inference`` as the official EDAM code runs
      it (allenwu97/EDAM ``infer_cls.py`` ``_crf_with_alpha``, EDAM's "dCRF"):
      unnormalised ``[(1 - max_k cams)^bg_power, cams]`` ->
      mean field -> argmax (``threshold`` is then unused). Use with
      ``crf='psa'``.
    * ``'labels'`` -- irn ``crf_inference_label`` (``misc/imutils.py``): CRF label
      inference from the thresholded argmax with the CRF's ``gt_prob``. Use
      with ``crf='irn_label'``.

    Args:
        threshold (float): background score τ. Defaults to 0.15 (irn, VWL CRF
            script; VWL CAM eval uses 0.13, EDAM sweeps 0.40-0.58).
        crf: None (default), a preset name, a dict or a ``DenseCRF``.
        crf_unary (str): ``'softmax'``, ``'one_minus_max'`` or ``'labels'``.
        bg_power (float): exponent of the background for ``'one_minus_max'``
            (PSA/EDAM: 1).
    """
    CRF_UNARIES = ('softmax', 'one_minus_max', 'labels')

    def __init__(self,
                 threshold: float = 0.15,
                 crf=None,
                 crf_unary: str = 'softmax',
                 bg_power: float = 1.0):
        super().__init__(crf=crf)
        if (not isinstance(threshold, numbers.Real)
                or not np.isfinite(threshold)):
            raise ValueError(f'ThresholdBackground: threshold must be a finite '
                             f'number, got {threshold!r}')
        if crf_unary not in self.CRF_UNARIES:
            raise ValueError(f'ThresholdBackground: crf_unary must be one of '
                             f'{self.CRF_UNARIES}, got {crf_unary!r}')
        if not (isinstance(bg_power, numbers.Real) and np.isfinite(bg_power)
                and bg_power > 0):
            raise ValueError(f'ThresholdBackground: bg_power must be a '
                             f'positive number, got {bg_power!r}')
        self.threshold = float(threshold)
        self.crf_unary = crf_unary
        self.bg_power = float(bg_power)

    def __repr__(self):
        return (f'{self.__class__.__name__}(threshold={self.threshold}, '
                f'crf={self.crf!r}, crf_unary={self.crf_unary!r}, '
                f'bg_power={self.bg_power})')

    def generate(self, record: CamRecord, image: Optional[np.ndarray],
                 saliency: Optional[np.ndarray]) -> np.ndarray:
        if len(record.labels) == 0:
            return np.zeros(record.shape, np.uint8)
        cams = np.asarray(record.cams, np.float32)
        scores = np.concatenate(
            [np.full((1, ) + record.shape, self.threshold, np.float32), cams])
        if self.crf is None:
            return labels_to_ids(np.argmax(scores, axis=0), record)
        if self.crf_unary == 'softmax':
            q = self.crf(image, _softmax(scores.astype(np.float64)))
            index = np.argmax(q, axis=0)
        elif self.crf_unary == 'one_minus_max':
            q = self.crf(image, one_minus_max_probs(cams, self.bg_power))
            index = np.argmax(q, axis=0)
        else:  # 'labels'
            index = self.crf.infer_labels(
                image, np.argmax(scores, axis=0), len(record.labels) + 1)
        return labels_to_ids(index, record)
