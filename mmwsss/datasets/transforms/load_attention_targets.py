"""Soft attention targets of the integral attention model (OAA+).

References: docs/methods/oaa.md, section 'References'.
"""
import numbers
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmwsss.registry import TRANSFORMS
from mmwsss.utils.cam_io import load_cam
from mmwsss.utils.geometry import from_canonical
from .load_cam_from_file import cam_file_of

GEOMETRY_KEYS = ('ori_shape', 'img_shape', 'scale_factor', 'crop_bbox', 'flip',
                 'flip_direction')
INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area')


@TRANSFORMS.register_module()
class LoadAttentionTargets(BaseTransform):
    """Load the soft attention targets of the integral attention model (OAA+).

    Reads the CAM file ``results['attention_path']`` (:mod:`mmwsss.utils.cam_io`;
    e.g. the final OAA / OAA++ cumulative maps exported at the original image size,
    [T] §3.4) and stores ``results['gt_attention']``: a float32 (num_classes, img_h,
    img_w) array in [0, 1] aligned with the augmented image, zero for classes without
    a map. :class:`PackWSSSInputs` packs it as ``data_sample.gt_attention`` and
    :class:`~mmwsss.models.heads.IAMHead` turns it into the targets ``p``.

    The mmwsss datasets set ``results['attention_path']`` to
    ``<data_prefix.attention_path>/<img_id>.npz``; the folder is a dataset key (relative
    to the working directory, checked at start-up; docs/datasets.md)::

        train_dataloader = dict(dataset=dict(data_prefix=dict(
            attention_path='work_dirs/oaa_vgg16_voc/oaa_maps')))

    ``cam_dir`` (the older form) overrides it with ``<cam_dir>/<img_id>.npz``.

    **Halo values.** The official OAA code trains the IAM on the stored uint8 PNG maps
    ([T] §3.4; ×255, truncated), where every value below 1/255 is 0, and its positive
    set is ``p > 0.001``. Interpolating a map spreads small values around its support
    (a bilinear warp of a map that drops to 0 gives e.g. 0.001 next to it), which
    would move those pixels from the constraint set ``N-`` into the enhance set ``N+``
    of the hybrid loss ([T] Eqs. 7-8, ``pos_threshold=0``). So, after warping, values
    below ``zero_below`` (default 1/255) are set to 0.

    **Put it at the end of the train pipeline**, after the geometric transforms and
    before ``PackWSSSInputs``. The maps are not registered in ``seg_fields`` and
    carried through the transforms: mmcv's ``Resize`` / ``RandomFlip`` only transform
    ``gt_seg_map`` (and nearest-interpolated, 2-D label maps at that), not extra
    multi-channel float fields. Instead the maps are warped from the original image
    into the augmented view with the geometry the transforms recorded
    (:func:`mmwsss.utils.geometry.from_canonical`, pipeline order resize -> crop ->
    flip: ``ori_shape``, ``img_shape``, mmcv ``Resize``'s ``scale_factor``,
    :class:`RandomCropWithBox`'s ``crop_bbox``, ``RandomFlip``'s ``flip`` /
    ``flip_direction``). Use :class:`RandomCropWithBox`, not ``RandomCrop`` (which
    records no box), and let the data preprocessor pad (not a ``Pad`` transform).

    Required keys: ``attention_path`` (or ``img_id`` with ``cam_dir``), ``ori_shape``
    (+ the optional geometric keys above). Added keys: ``gt_attention``.

    Args:
        cam_dir (str, optional): directory of the CAM files; overrides
            ``results['attention_path']`` (the dataset's ``data_prefix``).
        num_classes (int, optional): expected number of foreground classes; checked
            against the files.
        interpolation (str): resize mode of the maps (``'bilinear'``; the official
            code needs none: its targets are stored in the IAM's own input frame);
            results are clamped to [0, 1].
        zero_below (float, optional): after warping, values below it become 0
            (default 1/255, the quantisation step of the official uint8 targets);
            ``None`` or 0 keeps every value.
    """
    #: the dataset's data_prefix key whose files this transform reads
    DATA_PREFIX_KEY = 'attention_path'

    def __init__(self,
                 cam_dir: Optional[str] = None,
                 num_classes: Optional[int] = None,
                 interpolation: str = 'bilinear',
                 zero_below: Optional[float] = 1 / 255):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f'interpolation must be one of {INTERPOLATIONS}, '
                             f'got {interpolation!r}')
        if zero_below is not None and (
                not isinstance(zero_below, numbers.Real)
                or isinstance(zero_below, bool) or not 0 <= zero_below < 1):
            raise ValueError('LoadAttentionTargets: zero_below must be a number in '
                             f'[0, 1) or None, got {zero_below!r}')
        self.cam_dir = cam_dir
        self.num_classes = num_classes
        self.interpolation = interpolation
        self.zero_below = float(zero_below) if zero_below else None

    @property
    def reads_data_prefix(self) -> Optional[str]:
        """The data_prefix key read from ``results`` (None with a ``cam_dir``)."""
        return self.DATA_PREFIX_KEY if self.cam_dir is None else None

    def transform(self, results: dict) -> dict:
        img_id = results.get('img_id')
        path = cam_file_of('LoadAttentionTargets', results, self.cam_dir,
                           self.DATA_PREFIX_KEY)
        try:
            rec = load_cam(path)
        except FileNotFoundError:
            where = (f'cam_dir={self.cam_dir!r}' if self.cam_dir is not None else
                     'data_prefix.attention_path')
            raise FileNotFoundError(
                f'attention targets of image id {img_id!r} not found: {path!r} '
                'does not exist. Export the final attention maps (the OAA '
                'cumulative maps of an OAA run, tools/export_oaa_maps.py, or '
                f'tools/export_cams.py) to that folder first ({where})') from None
        if self.num_classes is not None and rec.num_classes != self.num_classes:
            raise ValueError(
                f'{path}: CAM file of image id {img_id!r} has {rec.num_classes} '
                f'classes but LoadAttentionTargets.num_classes is '
                f'{self.num_classes}')
        if 'ori_shape' not in results:
            raise KeyError(f'image id {img_id!r}: LoadAttentionTargets needs '
                           'results["ori_shape"] (load the image first)')
        ori = tuple(int(v) for v in results['ori_shape'][:2])
        if tuple(rec.shape) != ori:
            raise ValueError(
                f'{path}: attention maps of image id {img_id!r} have size '
                f'{tuple(rec.shape)} but the original image is {ori}: the maps '
                'must be at the original image size')
        meta = {k: results[k] for k in GEOMETRY_KEYS if k in results}
        img_h, img_w = (tuple(meta['img_shape'][:2])
                        if 'img_shape' in meta else ori)
        out = np.zeros((rec.num_classes, int(img_h), int(img_w)), np.float32)
        if len(rec.labels):
            # warping only the stored maps equals warping rec.dense(): the
            # interpolation is per channel and the other channels are zero
            warped = from_canonical(
                torch.from_numpy(rec.cams), meta, mode=self.interpolation)
            warped = warped.clamp_(0, 1)
            if self.zero_below is not None:
                # the official targets are uint8 PNGs: values < 1/255 are 0 there
                warped[warped < self.zero_below] = 0
            out[rec.labels] = warped.numpy()
        results['gt_attention'] = out
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(cam_dir={self.cam_dir!r}, '
                f'num_classes={self.num_classes}, '
                f'interpolation={self.interpolation!r}, '
                f'zero_below={self.zero_below})')
