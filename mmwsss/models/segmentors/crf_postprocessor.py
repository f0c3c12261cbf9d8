"""Test-time dense-CRF post-processing of segmentation logits (DeepLab).

DeepLab (Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional
Nets, Atrous Convolution, and Fully Connected CRFs", TPAMI 2018, §3.3) refines the
network's class probabilities, bilinearly upsampled to the image size, with a fully
connected CRF (Kraehenbuehl & Koltun, NIPS 2011) whose appearance kernel uses the
original image colours. The WSSS papers reproduced here use it for their reported
segmentation numbers (OAA, Jiang et al., TPAMI 2022, §4: "multi-scale test and apply
DenseCRF"; VWL, Ru et al., IJCV 2022, §4.2: "by default ... with dense CRF
post-processing"): the softmax of the logits upsampled to the image size, then
DenseCRF (kazuto1011/deeplab-pytorch ``main.py crf``, rulixiang/deeplab-pytorch
``v2/test_deeplabv2.py``).

:class:`DenseCRFPostProcessor` is that step, independent of any segmentor, so that
:class:`~mmwsss.models.segmentors.MSCEncoderDecoder` and other segmentors share it. The
CRF itself is :class:`mmwsss.pseudo.dense_crf.DenseCRF` (pydensecrf, imported on first
use).
"""
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmwsss.pseudo.dense_crf import DenseCRF, build_crf
from mmwsss.registry import MODELS

__all__ = ['DenseCRFPostProcessor']


@MODELS.register_module()
class DenseCRFPostProcessor:
    """Dense CRF on the softmax of per-pixel class logits.

    ``probs = softmax(seg_logits)`` over the class axis, ``Q = DenseCRF(image, probs)``
    (unary ``-log(clip(probs, min_prob, 1))``, mean-field marginals), labels =
    ``argmax Q``. This is kazuto1011/deeplab-pytorch's test-time CRF (and rulixiang's,
    VWL ``v2/test_deeplabv2.py``).

    Args:
        crf (None | str | dict | DenseCRF): CRF config for
            :func:`mmwsss.pseudo.dense_crf.build_crf`: a preset name of
            :data:`~mmwsss.pseudo.dense_crf.CRF_PRESETS` (``'deeplab_resnet'``: DeepLab-v2
            ResNet-101, 10 iterations, Gaussian (sxy 1, compat 3), bilateral (sxy 67,
            srgb 3, compat 4); ``'deeplab_vgg'``: DeepLab-LargeFOV VGG-16, Gaussian
            (3, 3), bilateral (121, 5, 4)), a dict of :class:`DenseCRF` arguments
            (optionally ``preset=`` + overrides) or a :class:`DenseCRF`. Must not be
            None.
        imdecode_backend (str): mmcv decoding backend used by :meth:`load_image`
            (``'cv2'``, as MMCV's ``LoadImageFromFile``, so that the image matches the
            one whose ``ori_shape`` the data pipeline recorded).
        backend_args (dict, optional): file backend arguments of :meth:`load_image`.
    """

    def __init__(self,
                 crf: Union[str, dict, DenseCRF] = 'deeplab_resnet',
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None):
        crf = build_crf(crf)
        if crf is None:
            raise ValueError('DenseCRFPostProcessor: crf must be a preset name, a '
                             'dict or a DenseCRF, got None')
        self.crf = crf
        self.imdecode_backend = imdecode_backend
        self.backend_args = None if backend_args is None else dict(backend_args)

    def __repr__(self):
        return f'{self.__class__.__name__}(crf={self.crf!r})'

    @classmethod
    def build(cls, cfg) -> Optional['DenseCRFPostProcessor']:
        """A post-processor from a segmentor's CRF setting: ``None`` (no CRF), a
        :class:`DenseCRFPostProcessor` (returned as is), a dict with
        ``type='DenseCRFPostProcessor'`` (its other keys are the arguments), or
        anything :func:`~mmwsss.pseudo.dense_crf.build_crf` takes (a preset name,
        a dict of :class:`DenseCRF` arguments, a :class:`DenseCRF`)."""
        if cfg is None or isinstance(cfg, cls):
            return cfg
        if isinstance(cfg, dict) and cfg.get('type') in (
                cls.__name__, f'mmwsss.{cls.__name__}', cls):
            args = dict(cfg)
            args.pop('type')
            return cls(**args)
        return cls(crf=cfg)

    def __call__(self, image_rgb: np.ndarray,
                 seg_logits: Tensor) -> Tuple[Tensor, Tensor]:
        """Refine one image's logits with the dense CRF.

        Args:
            image_rgb (np.ndarray): (H, W, 3) uint8 original image (RGB; the channel
                order does not change the result, see :class:`DenseCRF`).
            seg_logits (Tensor): (C, H, W) class logits (before softmax) at the image
                size, C >= 2. Any device / float dtype.

        Returns:
            tuple[Tensor, Tensor]: ``labels`` (H, W) int64 = argmax of the CRF
            marginals, and ``probs`` (C, H, W) the CRF marginals (sum to 1 per pixel),
            both on ``seg_logits``' device, ``probs`` in its float dtype.
        """
        if not isinstance(seg_logits, Tensor):
            seg_logits = torch.as_tensor(seg_logits)
        if seg_logits.ndim != 3:
            raise ValueError(f'DenseCRFPostProcessor: seg_logits must be (C, H, W), '
                             f'got shape {tuple(seg_logits.shape)}')
        if seg_logits.shape[0] < 2:
            raise ValueError(
                'DenseCRFPostProcessor: the CRF needs C >= 2 class logits (softmax '
                f'over classes), got C = {seg_logits.shape[0]}; single-channel '
                '(sigmoid) heads are not supported')
        dtype = seg_logits.dtype if seg_logits.is_floating_point() else torch.float32
        probs = seg_logits.detach().float().softmax(dim=0).cpu().numpy()
        q = self.crf(image_rgb, probs)
        probs_crf = torch.from_numpy(q).to(device=seg_logits.device, dtype=dtype)
        labels = torch.from_numpy(np.argmax(q, axis=0).astype(np.int64)).to(
            seg_logits.device)
        return labels, probs_crf

    def load_image(self, data_sample, expected_shape=None) -> np.ndarray:
        """Read the original image of a data sample as (H, W, 3) uint8 RGB.

        The network input is normalised, resized and padded, so the CRF's appearance
        kernel needs the image file itself: it is read from ``img_path`` in the
        sample's metainfo.

        Args:
            data_sample (SegDataSample | dict): a data sample or its metainfo dict.
            expected_shape (tuple, optional): (H, W) the image must have (the size of
                the logits, i.e. ``ori_shape``).

        Raises:
            KeyError: when the sample has no ``img_path``.
            ValueError: when the image's size differs from ``expected_shape``.
        """
        import mmcv
        meta = data_sample if isinstance(data_sample, dict) else getattr(
            data_sample, 'metainfo', {})
        img_path = meta.get('img_path', None)
        if img_path is None:
            raise KeyError(
                'Dense-CRF post-processing needs the original image, read from '
                '`img_path` in the data sample metainfo, but this sample has no '
                '`img_path` (e.g. predict() was called without data_samples or with '
                'samples that were not produced by LoadImageFromFile + PackSegInputs). '
                'Set test_cfg.crf=None to disable the CRF, or give img_path.')
        image = mmcv.imread(
            img_path,
            flag='color',
            channel_order='rgb',
            backend=self.imdecode_backend,
            backend_args=self.backend_args)
        if image is None:
            raise FileNotFoundError(f'Dense-CRF post-processing: cannot read the '
                                    f'image {img_path!r}')
        if image.dtype != np.uint8:
            raise ValueError(f'Dense-CRF post-processing: {img_path!r} decodes to '
                             f'dtype {image.dtype}, the CRF needs 8-bit images')
        if expected_shape is not None and tuple(image.shape[:2]) != tuple(
                int(s) for s in expected_shape[-2:]):
            raise ValueError(
                f'Dense-CRF post-processing: the image {img_path!r} has size '
                f'{tuple(image.shape[:2])} but the logits (ori_shape) are '
                f'{tuple(expected_shape[-2:])}')
        return np.ascontiguousarray(image)

    def process_sample(self, data_sample,
                       seg_logits: Tensor) -> Tuple[Tensor, Tensor]:
        """:meth:`load_image` (from ``img_path``) followed by :meth:`__call__`."""
        image = self.load_image(data_sample, expected_shape=seg_logits.shape[-2:])
        return self(image, seg_logits)
