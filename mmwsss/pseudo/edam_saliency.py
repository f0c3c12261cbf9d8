"""EDAM pseudo labels: CRF marginals fused with saliency (Alg. 1, pixel-wise form)."""
import numbers
from typing import Optional

import numpy as np

from mmwsss.registry import PSEUDO_LABEL_RULES
from mmwsss.utils.cam_io import CamRecord
from .base import BasePseudoLabelRule, one_minus_max_probs


@PSEUDO_LABEL_RULES.register_module()
class EDAMSaliency(BasePseudoLabelRule):
    """EDAM's saliency post-processing (Wu et al., CVPR 2021, §3.4, Alg. 1), in
    the pixel-wise form of Alg. 1 and of the official code (allenwu97/EDAM
    ``eval.py``; the §3.4 text speaks of the maximum of a "corresponding region").

    1. Scores: with ``apply_on='crf'`` (default, the Table 7 path) the CRF
       marginals ``Q`` of PSA's ``crf_inference`` on the unnormalised
       ``[(1 - max_k cams)^bg_power, cams]`` (allenwu97/EDAM ``infer_cls.py``
       ``_crf_with_alpha``: ``crf='psa'``, 3 mean-field iterations); only the
       foreground channels of ``Q`` are used.
       With ``apply_on='cam'`` the CAMs themselves (``crf`` is then not used).
    2. ``m = max_k score_k``, ``c = argmax_k score_k`` over the listed classes
       (a true argmax: ties go to the lower class, not the code's quirk).
    3. A pixel is non-salient iff ``Sal <= theta`` (the code's ``<=``; Sal in
       0..255).
    4. Salient: ``c + 1`` if ``m >= alpha`` and ``m > 0`` else 0 (background
       suppression). Non-salient: ``c + 1`` if ``m > beta`` else 0 (foreground
       pop-up).

    A pixel whose scores are all 0 has no class: it is background, salient or not,
    also with ``alpha = 0`` (in the official ``eval.py`` a class is written where its
    score is positive, so such a pixel stays 0; a plain argmax would give it the
    first listed class). This matters for ``apply_on='cam'``: CRF marginals are
    positive everywhere.

    No pixel is ignored. An image without listed classes is all background. With
    ``alpha = 0`` and ``beta = 1`` the rule reduces to plain saliency masking
    (Table 7, row 2) of the pixels with a positive score.

    Args:
        theta (float): saliency threshold θ on the 0..255 scale. 20.
        alpha (float): background-suppression threshold α. 0.25 (paper; the
            README command uses 1e-6).
        beta (float): foreground pop-up threshold β. 0.95 (paper; README
            0.99999).
        apply_on (str): ``'crf'`` or ``'cam'``.
        crf: CRF of ``apply_on='crf'``: a preset name (default ``'psa'``), a
            dict or a ``DenseCRF``.
        bg_power (float): exponent of the CRF background score (PSA/EDAM: 1).
    """
    APPLY_ON = ('crf', 'cam')

    def __init__(self,
                 theta: float = 20,
                 alpha: float = 0.25,
                 beta: float = 0.95,
                 apply_on: str = 'crf',
                 crf='psa',
                 bg_power: float = 1.0):
        if apply_on not in self.APPLY_ON:
            raise ValueError(f'EDAMSaliency: apply_on must be one of '
                             f'{self.APPLY_ON}, got {apply_on!r}')
        if apply_on == 'crf' and crf is None:
            raise ValueError("EDAMSaliency: apply_on='crf' needs a CRF, got "
                             "crf=None (use crf='psa' or apply_on='cam')")
        super().__init__(crf=crf if apply_on == 'crf' else None)
        for name, value, hi in (('theta', theta, 255), ('alpha', alpha, 1),
                                ('beta', beta, 1)):
            if not (isinstance(value, numbers.Real) and 0 <= value <= hi):
                raise ValueError(f'EDAMSaliency: {name} must be in [0, {hi}], '
                                 f'got {value!r}')
        if not (isinstance(bg_power, numbers.Real) and np.isfinite(bg_power)
                and bg_power > 0):
            raise ValueError(f'EDAMSaliency: bg_power must be a positive '
                             f'number, got {bg_power!r}')
        self.theta = float(theta)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.apply_on = apply_on
        self.bg_power = float(bg_power)

    @property
    def requires_saliency(self) -> bool:
        return True

    def __repr__(self):
        return (f'{self.__class__.__name__}(theta={self.theta}, '
                f'alpha={self.alpha}, beta={self.beta}, '
                f'apply_on={self.apply_on!r}, crf={self.crf!r}, '
                f'bg_power={self.bg_power})')

    def generate(self, record: CamRecord, image: Optional[np.ndarray],
                 saliency: np.ndarray) -> np.ndarray:
        if len(record.labels) == 0:
            return np.zeros(record.shape, np.uint8)
        cams = np.asarray(record.cams, np.float32)
        if self.apply_on == 'crf':
            score = self.crf(image, one_minus_max_probs(cams,
                                                        self.bg_power))[1:]
        else:
            score = cams
        m = score.max(axis=0)
        c = score.argmax(axis=0)
        non_salient = saliency <= self.theta
        # m > 0: a pixel without any class score is background (EDAM eval.py)
        keep = np.where(non_salient, m > self.beta, m >= self.alpha) & (m > 0)
        ids = (np.asarray(record.labels, np.int64) + 1)[c].astype(np.uint8)
        return np.where(keep, ids, 0).astype(np.uint8)
