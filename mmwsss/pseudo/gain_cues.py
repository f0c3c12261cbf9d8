"""GAIN localization cues: foreground above 20 % of each map's maximum, background from
saliency."""
import numbers
from typing import Optional

import numpy as np

from mmwsss.registry import PSEUDO_LABEL_RULES
from mmwsss.utils.cam_io import CamRecord
from .base import IGNORE_INDEX, BasePseudoLabelRule, refine_labels_with_crf


@PSEUDO_LABEL_RULES.register_module()
class GAINCues(BasePseudoLabelRule):
    """GAIN's localization cues (Li et al., "Tell Me Where to Look: Guided Attention
    Inference Network", CVPR 2018, §4, following SEC): "for each per-class attention
    map, all pixels with a score larger than 20 percent of the maximum score are
    selected"; background cues come from a saliency map.

    Per image, for every class ``c`` listed in the CAM file (the image's GT classes
    when the CAMs were exported with ``test_cfg.restrict='gt'``, the default; other
    classes have no map and give no cue):

    1. foreground cue of ``c``: ``A^c > fg_ratio * max A^c`` (strict; a map whose
       maximum is 0 gives none). The maximum is the map's own, so the rule does not
       depend on how the maps were normalised;
    2. background cue (``background='saliency'``): ``S < bg_saliency`` (S on the
       0..255 scale), or, with ``bg_percentile=p``, ``S <=`` the ``p``-th percentile
       of the image's saliency (NumPy ``method='lower'``: a saliency value of the
       image; ties can make it a little more than ``p`` % of the pixels; SEC takes
       the least salient ~10 %). With ``background='attention'`` (no saliency map):
       every listed class's normalised attention ``A^c / max A^c`` is below
       ``bg_attention``;
    3. label: a pixel with exactly one foreground cue takes that class (``c + 1``);
       a pixel with several takes ``overlap='ignore'`` -> 255, or
       ``overlap='argmax'`` -> the cued class of the largest normalised attention
       ``A^c / max A^c`` (ties to the lower class index); a pixel without a
       foreground cue is background (0) where it is a background cue -- a
       foreground cue is never background --, else 255.

    An image without listed classes is all background (its image label says no
    object is there). The paper uses no CRF at this stage; ``crf`` optionally
    refines the labelled pixels (:func:`refine_labels_with_crf`, 255 stays 255).

    None of the other rules gives these cues: ``ThresholdBackground`` labels every
    pixel (no 255) and resolves overlaps by argmax only; ``ConfidentRegions`` takes
    its background from a low CAM threshold, not from saliency;
    ``SaliencyBackground`` lets the saliency score compete with the attention
    (``1 - S/255`` against min-max maps above 0.3) and ignores overlaps only above
    0.9; ``EDAMSaliency`` ignores no pixel.

    Args:
        fg_ratio (float): the foreground threshold relative to each map's
            maximum, in [0, 1). 0.2 (the paper).
        overlap (str): ``'ignore'`` (default) or ``'argmax'``.
        background (str): ``'saliency'`` (default; needs the saliency maps) or
            ``'attention'``.
        bg_saliency (float): saliency below it is background, 0..255. 32 (the
            paper does not say; the value OAA's rule uses with DSS maps).
        bg_percentile (float, optional): in (0, 100]: background = the least
            salient pixels up to this percentile, instead of ``bg_saliency``.
        bg_attention (float): ``background='attention'``: the normalised
            attention of every class is below it. 0.05.
        crf: None (default), a preset name, a dict or a ``DenseCRF``.
    """
    OVERLAPS = ('ignore', 'argmax')
    BACKGROUNDS = ('saliency', 'attention')

    def __init__(self,
                 fg_ratio: float = 0.2,
                 overlap: str = 'ignore',
                 background: str = 'saliency',
                 bg_saliency: float = 32,
                 bg_percentile: Optional[float] = None,
                 bg_attention: float = 0.05,
                 crf=None):
        super().__init__(crf=crf)
        if not (isinstance(fg_ratio, numbers.Real) and 0 <= fg_ratio < 1):
            raise ValueError(f'GAINCues: fg_ratio must be in [0, 1), got '
                             f'{fg_ratio!r}')
        if overlap not in self.OVERLAPS:
            raise ValueError(f'GAINCues: overlap must be one of {self.OVERLAPS}, '
                             f'got {overlap!r}')
        if background not in self.BACKGROUNDS:
            raise ValueError(f'GAINCues: background must be one of '
                             f'{self.BACKGROUNDS}, got {background!r}')
        if not (isinstance(bg_saliency, numbers.Real)
                and 0 <= bg_saliency <= 255):
            raise ValueError(f'GAINCues: bg_saliency must be in [0, 255] '
                             f'(saliency scale), got {bg_saliency!r}')
        if bg_percentile is not None and not (
                isinstance(bg_percentile, numbers.Real)
                and 0 < bg_percentile <= 100):
            raise ValueError(f'GAINCues: bg_percentile must be None or in '
                             f'(0, 100], got {bg_percentile!r}')
        if bg_percentile is not None and background != 'saliency':
            raise ValueError("GAINCues: bg_percentile needs background="
                             "'saliency'")
        if not (isinstance(bg_attention, numbers.Real)
                and 0 <= bg_attention <= 1):
            raise ValueError(f'GAINCues: bg_attention must be in [0, 1], got '
                             f'{bg_attention!r}')
        self.fg_ratio = float(fg_ratio)
        self.overlap = overlap
        self.background = background
        self.bg_saliency = float(bg_saliency)
        self.bg_percentile = (None if bg_percentile is None else
                              float(bg_percentile))
        self.bg_attention = float(bg_attention)

    @property
    def requires_saliency(self) -> bool:
        return self.background == 'saliency'

    def __repr__(self):
        return (f'{self.__class__.__name__}(fg_ratio={self.fg_ratio}, '
                f'overlap={self.overlap!r}, background={self.background!r}, '
                f'bg_saliency={self.bg_saliency}, '
                f'bg_percentile={self.bg_percentile}, '
                f'bg_attention={self.bg_attention}, crf={self.crf!r})')

    def _background(self, norm: np.ndarray,
                    saliency: Optional[np.ndarray]) -> np.ndarray:
        if self.background == 'attention':
            if not len(norm):
                return np.ones(norm.shape[1:], bool)
            return (norm < self.bg_attention).all(axis=0)
        if self.bg_percentile is not None:
            thr = np.percentile(saliency, self.bg_percentile, method='lower')
            return saliency <= thr
        return saliency < self.bg_saliency

    def generate(self, record: CamRecord, image: Optional[np.ndarray],
                 saliency: Optional[np.ndarray]) -> np.ndarray:
        if len(record.labels) == 0:
            return np.zeros(record.shape, np.uint8)
        # in the maps' precision (float32): a value of exactly 0.2 * max is no cue
        att = np.asarray(record.cams, np.float32)
        peak = att.max(axis=(1, 2), keepdims=True)
        cue = att > np.float32(self.fg_ratio) * peak  # (K, H, W); 0 map: none
        norm = np.divide(att, peak, out=np.zeros_like(att), where=peak > 0)
        n_cues = cue.sum(axis=0)
        ids = (np.asarray(record.labels, np.int64) + 1).astype(np.uint8)
        label = np.full(record.shape, IGNORE_INDEX, np.uint8)
        label[(n_cues == 0) & self._background(norm, saliency)] = 0
        if self.overlap == 'argmax':
            best = np.where(cue, norm, -np.inf).argmax(axis=0)
            fg = n_cues >= 1
        else:
            best = cue.argmax(axis=0)  # the only cue where n_cues == 1
            fg = n_cues == 1
        label[fg] = ids[best[fg]]
        if self.crf is not None:
            label = refine_labels_with_crf(self.crf, image, label, record)
        return label
