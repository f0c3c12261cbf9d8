import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs

from mmwsss.registry import TRANSFORMS
from mmwsss.structures import WSSSDataSample

DEFAULT_META_KEYS = ('img_id', 'img_path', 'seg_map_path', 'ori_shape',
                     'img_shape', 'pad_shape', 'scale_factor', 'flip',
                     'flip_direction', 'reduce_zero_label', 'crop_bbox',
                     'strong_pixel', 'strong_box')
#: meta keys packed whatever ``meta_keys`` says (when the item has them)
ALWAYS_META_KEYS = ('img_id', 'strong_pixel', 'strong_box')


@TRANSFORMS.register_module()
class PackWSSSInputs(PackSegInputs):
    """Pack a WSSS sample: MMSeg's :class:`PackSegInputs` plus the WSSS fields.

    Produces a :class:`~mmwsss.structures.WSSSDataSample` with

    - ``gt_label``: the multi-hot image-level label (from ``results['gt_label']``);
    - ``gt_score``: the same vector (a copy), the field MMPretrain's multi-label metrics
      (``mmpretrain.AveragePrecision``, ``mmpretrain.MultiLabelMetric``) read;
    - ``gt_sem_seg``: the mask, if the pipeline loaded one (GT or pseudo label);
    - ``gt_saliency``: the saliency map scaled to [0, 1], if ``LoadSaliencyMap`` ran;
    - ``gt_attention``: the (K, H, W) soft attention targets in [0, 1], if
      ``LoadAttentionTargets`` ran (the integral attention model, OAA+);
    - ``gt_box_mask``: the (K, H, W) uint8 box masks of a box-labelled image
      (channel ``c``: inside a box of class ``c``), if ``LoadExtraSupervision``
      made them (GAIN_ext, docs/datasets.md);
    - meta ``img_id`` and, for datasets with ``strong_subsets``, the flags
      ``strong_pixel`` / ``strong_box`` (always kept), and the usual geometric meta
      keys.

    A box mask, and the saliency map of a box-labelled image, must have the size of
    the image: a geometric transform that moved the image but not ``seg_fields``
    (MMCV's own ``Resize``, built outside the ``mmwsss`` / ``mmseg`` scope) is an
    error here.
    """

    def __init__(self, meta_keys=DEFAULT_META_KEYS):
        meta_keys = tuple(meta_keys)
        missing = tuple(k for k in ALWAYS_META_KEYS if k not in meta_keys)
        super().__init__(meta_keys=missing + meta_keys)

    @staticmethod
    def _check_size(results: dict, key: str, shape: tuple) -> None:
        img_shape = tuple(results['img'].shape[:2])
        if tuple(shape) != img_shape:
            raise ValueError(
                f"PackWSSSInputs: image id {results.get('img_id')!r}: {key} is "
                f'{tuple(shape)} but the image is {img_shape}: a geometric transform '
                'moved the image but not results["seg_fields"]; use MMSeg\'s '
                "transforms (default_scope 'mmwsss': Resize, RandomResize, "
                'RandomFlip, RandomCrop)')

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        seg_sample = packed['data_samples']
        sample = WSSSDataSample(metainfo=seg_sample.metainfo)
        sample.set_data(dict(seg_sample.items()))
        if 'gt_label' in results:
            label = torch.as_tensor(
                np.asarray(results['gt_label'], dtype=np.float32))
            sample.gt_label = label
            sample.gt_score = label.clone()
        if 'gt_box_mask' in results:
            box = np.asarray(results['gt_box_mask'], dtype=np.uint8)
            if box.ndim == 2:  # one class: cv2 drops a single channel
                box = box[..., None]
            self._check_size(results, 'gt_box_mask', box.shape[:2])
            box = np.ascontiguousarray(box.transpose(2, 0, 1))
            sample.gt_box_mask = PixelData(data=torch.from_numpy(box))
        if 'gt_saliency' in results:
            if results.get('strong_box'):
                self._check_size(results, 'gt_saliency',
                                 np.shape(results['gt_saliency'])[:2])
            sal = np.ascontiguousarray(results['gt_saliency'])
            sal = torch.from_numpy(sal.astype(np.float32) / 255.)[None]
            sample.gt_saliency = PixelData(data=sal)
        if 'gt_attention' in results:
            att = np.ascontiguousarray(results['gt_attention'], dtype=np.float32)
            sample.gt_attention = PixelData(data=torch.from_numpy(att))
        packed['data_samples'] = sample
        return packed
