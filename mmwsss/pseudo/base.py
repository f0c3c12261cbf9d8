"""Base class and helpers of the CAM -> pseudo-label rules (stage [3]).

A rule turns the CAMs of one image (:class:`~mmwsss.utils.cam_io.CamRecord`), and,
depending on the rule, the image and a class-agnostic saliency map, into a
segmentation label map in the VOC convention:

* ``0``: background,
* ``c + 1``: foreground class ``c`` (0-based index of the dataset's foreground
  classes; only classes listed in the record can appear),
* ``255``: ignored (not used by the segmentation loss).
"""
from abc import ABCMeta, abstractmethod
from typing import Optional

import numpy as np

from mmwsss.utils.cam_io import CamRecord

__all__ = [
    'BasePseudoLabelRule', 'labels_to_ids', 'refine_labels_with_crf',
    'one_minus_max_probs', 'IGNORE_INDEX'
]

IGNORE_INDEX = 255


def _check_record(record: CamRecord):
    if not isinstance(record, CamRecord):
        raise TypeError(f'expected a CamRecord, got {type(record).__name__}')
    if record.cams.ndim != 3 or record.cams.shape[0] != len(record.labels):
        raise ValueError(f'inconsistent CamRecord: cams {record.cams.shape}, '
                         f'labels {np.shape(record.labels)}')
    if record.num_classes > 254:
        raise ValueError(f'{record.num_classes} foreground classes do not fit '
                         f'a uint8 label map with 255 = ignore (at most 254)')


def labels_to_ids(index_map: np.ndarray, record: CamRecord) -> np.ndarray:
    """Map argmax indices over ``[background, listed classes]`` to label ids.

    Index 0 -> 0 (background), index ``i + 1`` -> ``record.labels[i] + 1``.

    Args:
        index_map: (H, W) integer map with values in ``[0, K]``, where K is the
            number of listed classes.
        record: the CAM record the indices refer to.

    Returns:
        np.ndarray: (H, W) uint8 label map.
    """
    index_map = np.asarray(index_map)
    keys = np.concatenate([[0], np.asarray(record.labels, np.int64) + 1])
    if index_map.size and (index_map.min() < 0
                           or index_map.max() >= len(keys)):
        raise ValueError(f'index {int(index_map.max())} out of range for '
                         f'{len(keys) - 1} listed classes plus background')
    return keys[index_map].astype(np.uint8)


def one_minus_max_probs(cams: np.ndarray, bg_power: float = 1.0) -> np.ndarray:
    """PSA/EDAM CRF scores ``[(1 - max_k cams)^bg_power, cams]`` (unnormalised; the
    official EDAM code, allenwu97/EDAM ``infer_cls.py`` ``_crf_with_alpha``).
    ``1 - max`` is clipped at 0 so that CAMs slightly above 1 give no NaN.

    Args:
        cams: (K, H, W) maps in [0, 1], K >= 1.
        bg_power (float): exponent of the background (PSA/EDAM: 1).

    Returns:
        np.ndarray: (K + 1, H, W) float32.
    """
    cams = np.asarray(cams, np.float32)
    bg = np.power(
        np.clip(1.0 - cams.max(axis=0, keepdims=True), 0, None), bg_power)
    return np.concatenate([bg.astype(np.float32), cams])


def ids_to_indices(label: np.ndarray, record: CamRecord) -> np.ndarray:
    """Inverse of :func:`labels_to_ids`; 255 stays 255. Ids of classes that the
    record does not list raise a ValueError naming them."""
    label = np.asarray(label)
    lut = np.full(256, -1, np.int64)
    lut[0] = 0
    lut[np.asarray(record.labels, np.int64) + 1] = np.arange(
        1, len(record.labels) + 1)
    lut[IGNORE_INDEX] = IGNORE_INDEX
    if label.dtype.kind not in 'iub' or (label.size and
                                         (label.min() < 0
                                          or label.max() > 255)):
        raise ValueError(f'a label map must be integer in [0, 255], got dtype '
                         f'{label.dtype}')
    out = lut[label.astype(np.int64)]
    if (out < 0).any():
        bad = sorted(set(np.unique(label[out < 0]).tolist()))
        raise ValueError(f'label ids {bad} are neither 0, 255 nor a listed '
                         f'class + 1 (listed: {(record.labels + 1).tolist()})')
    return out


def refine_labels_with_crf(crf, image: np.ndarray, label: np.ndarray,
                           record: CamRecord) -> np.ndarray:
    """Dense-CRF refinement of a pseudo-label map ("optionally followed by CRF").

    The unary is ``unary_from_labels`` over ``[background] + listed classes`` with
    the CRF's ``gt_prob`` (jiwoon-ahn/irn ``misc/imutils.py``
    ``crf_inference_label``); pixels labelled 255 get a uniform unary, and stay 255
    afterwards. The other pixels take the argmax of the marginals.

    Args:
        crf (DenseCRF | None): None returns a copy of ``label``.
        image: (H, W, 3) uint8 RGB.
        label: (H, W) map with values in {0, 255} ∪ {c + 1: c listed}.
        record: the CAM record the label map was made from.

    Returns:
        np.ndarray: (H, W) uint8 label map.
    """
    label = np.asarray(label)
    if label.shape != record.shape:
        raise ValueError(f'label map size {label.shape} does not match the CAM '
                         f'size {record.shape}')
    index = ids_to_indices(label, record)
    if crf is None or len(record.labels) == 0:
        # one label (background) only: the CRF cannot change anything
        return label.astype(np.uint8, copy=True)
    pred = crf.infer_labels(
        image, index, len(record.labels) + 1, ignore_index=IGNORE_INDEX)
    out = labels_to_ids(pred, record)
    out[label == IGNORE_INDEX] = IGNORE_INDEX
    return out


class BasePseudoLabelRule(metaclass=ABCMeta):
    """Base class of the CAM -> pseudo-label rules.

    Subclasses implement :meth:`generate`; :meth:`__call__` validates and
    normalises the inputs first.

    The saliency map is the raw class-agnostic saliency of the image (DSS for
    OAA, PoolNet for EDAM), (H, W), either

    * an integer array in [0, 255] (a saliency PNG), used as is, or
    * a float array in [0, 1], multiplied by 255.

    Rules therefore always see saliency on the 0..255 scale of the reference
    code (OAA ``1 - S/255``, ``S >= 32``; EDAM ``Sal <= θ = 20``). A float map
    outside [0, 1] is rejected (it is ambiguous, e.g. a float copy of a PNG).

    Args:
        crf: None, a preset name of :data:`~mmwsss.pseudo.CRF_PRESETS`, a dict
            for :func:`~mmwsss.pseudo.build_crf` or a
            :class:`~mmwsss.pseudo.DenseCRF`.
    """

    def __init__(self, crf=None):
        from .dense_crf import build_crf
        self.crf = build_crf(crf)

    @property
    def requires_image(self) -> bool:
        """Whether :meth:`__call__` needs the image (True when a CRF runs)."""
        return self.crf is not None

    @property
    def requires_saliency(self) -> bool:
        """Whether :meth:`__call__` needs a saliency map."""
        return False

    def __repr__(self):
        return f'{self.__class__.__name__}(crf={self.crf!r})'

    @staticmethod
    def _normalise_saliency(saliency) -> np.ndarray:
        saliency = np.asarray(saliency)
        if saliency.ndim == 3 and saliency.shape[2] == 1:
            saliency = saliency[..., 0]
        if saliency.ndim != 2:
            raise ValueError(f'saliency must be an (H, W) map, got shape '
                             f'{saliency.shape}')
        kind = saliency.dtype.kind
        if kind == 'b':
            raise ValueError('saliency must be uint8 in [0, 255] or float in '
                             '[0, 1], got a bool map')
        if kind in 'iu':
            if saliency.size and (saliency.min() < 0 or saliency.max() > 255):
                raise ValueError(
                    f'integer saliency must be in [0, 255], got values in '
                    f'[{saliency.min()}, {saliency.max()}]')
            return saliency.astype(np.float64)
        if kind == 'f':
            if not np.isfinite(saliency).all():
                raise ValueError('saliency has non-finite values')
            if saliency.size and (saliency.min() < 0 or saliency.max() > 1):
                raise ValueError(
                    f'float saliency must be in [0, 1] (integer maps are read '
                    f'as 0..255), got values in [{saliency.min():g}, '
                    f'{saliency.max():g}]')
            return saliency.astype(np.float64) * 255.0
        raise ValueError(f'saliency must be numeric, got dtype '
                         f'{saliency.dtype}')

    def __call__(self,
                 record: CamRecord,
                 image: Optional[np.ndarray] = None,
                 saliency: Optional[np.ndarray] = None) -> np.ndarray:
        """Pseudo label of one image.

        Args:
            record: CAMs of the image (original size).
            image: (H, W, 3) uint8 RGB image (the CRF needs RGB); needed when
                :attr:`requires_image` is True.
            saliency: (H, W) saliency map (see the class docstring); needed
                when :attr:`requires_saliency` is True.

        Returns:
            np.ndarray: (H, W) uint8 with 0 = background, ``c + 1`` = class c,
            255 = ignore.
        """
        name = self.__class__.__name__
        _check_record(record)
        if self.requires_image and image is None:
            raise ValueError(f'{name}: the image is missing (this rule runs a '
                             f'CRF, which needs the (H, W, 3) uint8 image)')
        if self.requires_saliency and saliency is None:
            raise ValueError(f'{name}: the saliency map is missing (this rule '
                             f'needs an (H, W) saliency map)')
        if image is not None:
            image = np.asarray(image)
            if image.ndim < 2 or tuple(image.shape[:2]) != record.shape:
                raise ValueError(f'{name}: image size {image.shape[:2]} does '
                                 f'not match the CAM size {record.shape}')
        if saliency is not None:
            sal_shape = np.shape(saliency)[:2]
            if tuple(sal_shape) != record.shape:
                raise ValueError(f'{name}: saliency size {tuple(sal_shape)} '
                                 f'does not match the CAM size '
                                 f'{record.shape}')
            saliency = self._normalise_saliency(saliency)
        out = self.generate(record, image, saliency)
        if out.shape != record.shape or out.dtype != np.uint8:
            raise RuntimeError(f'{name}.generate returned {out.dtype} '
                               f'{out.shape}, expected uint8 {record.shape}')
        return out

    @abstractmethod
    def generate(self, record: CamRecord, image: Optional[np.ndarray],
                 saliency: Optional[np.ndarray]) -> np.ndarray:
        """The rule itself, on validated inputs.

        ``saliency`` is float64 on the 0..255 scale (or None), ``image`` the
        caller's array (or None). Returns an (H, W) uint8 label map.
        """
