import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs

from mmwsss.registry import TRANSFORMS
from mmwsss.structures import WSSSDataSample

DEFAULT_META_KEYS = ('img_id', 'img_path', 'seg_map_path', 'ori_shape',
                     'img_shape', 'pad_shape', 'scale_factor', 'flip',
                     'flip_direction', 'reduce_zero_label', 'crop_bbox')


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
    - meta ``img_id`` (always kept) and the usual geometric meta keys.
    """

    def __init__(self, meta_keys=DEFAULT_META_KEYS):
        meta_keys = tuple(meta_keys)
        if 'img_id' not in meta_keys:
            meta_keys = ('img_id', ) + meta_keys
        super().__init__(meta_keys=meta_keys)

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
        if 'gt_saliency' in results:
            sal = np.ascontiguousarray(results['gt_saliency'])
            sal = torch.from_numpy(sal.astype(np.float32) / 255.)[None]
            sample.gt_saliency = PixelData(data=sal)
        if 'gt_attention' in results:
            att = np.ascontiguousarray(results['gt_attention'], dtype=np.float32)
            sample.gt_attention = PixelData(data=torch.from_numpy(att))
        packed['data_samples'] = sample
        return packed
