"""OAA pseudo labels: attention maps for the objects, saliency for the background."""
import numbers
from typing import Optional

import numpy as np

from mmwsss.registry import PSEUDO_LABEL_RULES
from mmwsss.utils.cam_io import CamRecord
from .base import (IGNORE_INDEX, BasePseudoLabelRule, labels_to_ids,
                   refine_labels_with_crf)


def minmax(att: np.ndarray) -> np.ndarray:
    """Per-map min-max normalisation to [0, 1]; a constant map gives zeros."""
    att = np.asarray(att, np.float64)
    lo, hi = att.min(), att.max()
    if not hi > lo:
        return np.zeros_like(att)
    return (att - lo) / (hi - lo)


def _check_unit(name, value):
    if not (isinstance(value, numbers.Real) and 0 <= value <= 1):
        raise ValueError(f'SaliencyBackground: {name} must be in [0, 1], got '
                         f'{value!r}')
    return float(value)


@PSEUDO_LABEL_RULES.register_module()
class SaliencyBackground(BasePseudoLabelRule):
    """OAA's pseudo-label rule (Jiang et al., ICCV 2019 / TPAMI 2021, §4 "similar
    to [22]"; exact procedure from the official code, PengtaoJiang/OAA-PyTorch
    ``gen_gt.py``).

    Object cues come from the attention maps (the CAM file), background cues from
    a class-agnostic saliency map S in [0, 255] (DSS), and conflicting pixels are
    ignored. Per image:

    1. ``score[0] = 1 - S / 255`` (background);
    2. ``score[c + 1] = minmax(att_c)`` for each listed class c (the CAM-file
       maps are already in [0, 1]; the min-max of ``gen_gt.py`` is still
       applied, a constant map becomes 0);
    3. ``sal_att = max(S, 255 * [att_c > att_threshold] over c)``;
    4. ``score[score < fg_threshold] = 0`` for every channel, background
       included;
    5. ``conflict = #channels with score > conflict_threshold``;
    6. ``label = argmax(score)`` (ties to the lower index, i.e. background);
       ``label[conflict > 1] = 255``;
    7. ``label[(label == 0) & (sal_att >= bg_saliency)] = 255``;
    8. if the fraction of foreground pixels is below ``min_fg_ratio``, the whole
       image becomes 255.

    Closed forms (with the defaults): background ⇔ ``S < 32`` and
    ``max_c att_c <= 0.8``; class c ⇔ ``att_c >= 0.3``, ``att_c`` is the class
    maximum, ``att_c > 1 - S/255`` (or ``S > 178``), and no two channels exceed
    0.9; everything else is ignored. The reference uses **no CRF**; ``crf``
    optionally refines the result with :func:`refine_labels_with_crf` (255 stays
    255).

    Args:
        fg_threshold (float): scores below it are zeroed (step 4). 0.3.
        conflict_threshold (float): conflict level (step 5). 0.9.
        bg_saliency (float): background needs ``sal_att`` below it, on the
            0..255 scale (step 7). 32.
        att_threshold (float): attention above it vetoes background (step 3).
            0.8.
        min_fg_ratio (float): minimum foreground fraction (step 8). 0.01.
        crf: None (default, the reference), a preset name, a dict or a
            ``DenseCRF`` for an optional label refinement.
    """

    def __init__(self,
                 fg_threshold: float = 0.3,
                 conflict_threshold: float = 0.9,
                 bg_saliency: float = 32,
                 att_threshold: float = 0.8,
                 min_fg_ratio: float = 0.01,
                 crf=None):
        super().__init__(crf=crf)
        self.fg_threshold = _check_unit('fg_threshold', fg_threshold)
        self.conflict_threshold = _check_unit('conflict_threshold',
                                              conflict_threshold)
        self.att_threshold = _check_unit('att_threshold', att_threshold)
        self.min_fg_ratio = _check_unit('min_fg_ratio', min_fg_ratio)
        if not (isinstance(bg_saliency, numbers.Real)
                and 0 <= bg_saliency <= 255):
            raise ValueError(f'SaliencyBackground: bg_saliency must be in '
                             f'[0, 255] (saliency scale), got {bg_saliency!r}')
        self.bg_saliency = float(bg_saliency)

    @property
    def requires_saliency(self) -> bool:
        return True

    def __repr__(self):
        return (f'{self.__class__.__name__}(fg_threshold={self.fg_threshold}, '
                f'conflict_threshold={self.conflict_threshold}, '
                f'bg_saliency={self.bg_saliency}, '
                f'att_threshold={self.att_threshold}, '
                f'min_fg_ratio={self.min_fg_ratio}, crf={self.crf!r})')

    def generate(self, record: CamRecord, image: Optional[np.ndarray],
                 saliency: np.ndarray) -> np.ndarray:
        k = len(record.labels)
        sal = saliency  # float64, 0..255
        score = np.empty((k + 1, ) + record.shape, np.float64)
        score[0] = 1.0 - sal / 255.0  # 1.
        sal_att = sal.copy()
        for i in range(k):
            att = minmax(record.cams[i])  # 2.
            score[i + 1] = att
            sal_att = np.maximum(sal_att, 255.0 * (att > self.att_threshold))
        score[score < self.fg_threshold] = 0  # 4.
        conflict = (score > self.conflict_threshold).sum(axis=0)  # 5.
        label = labels_to_ids(np.argmax(score, axis=0), record)  # 6.
        label[conflict > 1] = IGNORE_INDEX
        label[(label == 0) & (sal_att >= self.bg_saliency)] = IGNORE_INDEX  # 7.
        fg = ((label != 0) & (label != IGNORE_INDEX)).mean()
        if fg < self.min_fg_ratio:  # 8.
            label[...] = IGNORE_INDEX
            return label
        if self.crf is not None:
            label = refine_labels_with_crf(self.crf, image, label, record)
        return label
