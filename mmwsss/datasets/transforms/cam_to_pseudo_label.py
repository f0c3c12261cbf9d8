import numpy as np
from mmcv.transforms import BaseTransform

from mmwsss.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CAMToPseudoLabel(BaseTransform):
    """Build the pseudo label of an image on the fly: CAMs -> rule (-> CRF) ->
    ``gt_seg_map`` (0 background, 1..K classes, 255 ignore).

    ``rule`` is any registered pseudo-label rule (``ThresholdBackground``,
    ``SaliencyBackground``, ``EDAMSaliency``, ``ConfidentRegions``; see
    ``docs/pseudo_labels.md``), including its optional dense CRF. Place it right after
    ``LoadImageFromFile`` / :class:`LoadCAMFromFile` / :class:`LoadSaliencyMap` and
    **before** any geometric transform: the CAMs, the image and the saliency map are
    at the original size here, and the resulting ``gt_seg_map`` then follows every
    resize, crop and flip like a mask loaded from disk::

        dict(type='LoadImageFromFile'),
        dict(type='LoadCAMFromFile'),            # data_prefix.cam_path of the dataset
        dict(type='LoadSaliencyMap'),            # only for saliency rules
        dict(type='CAMToPseudoLabel', rule=dict(type='SaliencyBackground')),
        dict(type='RandomResize', ...), dict(type='RandomCrop', ...), ...

    with ``data_prefix=dict(..., cam_path='work_dirs/oaa_vgg16_voc/oaa_maps')`` in the
    dataset (relative to the working directory; docs/datasets.md).

    Offline PNGs (``tools/make_pseudo_labels.py``) are faster for more than one epoch:
    a CRF costs about a second per VOC image.

    Args:
        rule (dict): the rule config.
        channel_order (str): channel order of ``results['img']`` (``'bgr'``, mmcv's
            default loader, or ``'rgb'``); the rule's CRF gets RGB.

    Required keys: ``cam_record``, ``img`` (if the rule needs it), ``gt_saliency``
    (if the rule needs it). Added keys: ``gt_seg_map`` (in ``seg_fields``).
    """

    def __init__(self, rule: dict = dict(type='ThresholdBackground'),
                 channel_order: str = 'bgr'):
        from mmwsss.pseudo import build_pseudo_label_rule
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError("channel_order must be 'bgr' or 'rgb'")
        self.rule_cfg = rule
        self.rule = build_pseudo_label_rule(rule)
        self.channel_order = channel_order

    def transform(self, results: dict) -> dict:
        img_id = results.get('img_id')
        rec = results.pop('cam_record', None)
        if rec is None:
            raise KeyError(
                f'image {img_id!r}: CAMToPseudoLabel needs the CAMs: put '
                'LoadCAMFromFile before it in the pipeline')
        image = saliency = None
        for key, what in (('img', 'image'), ('gt_saliency', 'saliency map')):
            arr = results.get(key)
            if arr is not None and tuple(arr.shape[:2]) != tuple(rec.shape):
                raise ValueError(
                    f'image {img_id!r}: the {what} is {tuple(arr.shape[:2])} but '
                    f'its CAMs are {tuple(rec.shape)}: put CAMToPseudoLabel before '
                    'any resize / crop (CAMs are at the original size)')
        if self.rule.requires_image:
            image = results['img']
            if self.channel_order == 'bgr':
                image = image[..., ::-1]
            image = np.ascontiguousarray(image, dtype=np.uint8)
        if self.rule.requires_saliency:
            saliency = results.get('gt_saliency')
            if saliency is None:
                raise KeyError(
                    f'image {img_id!r}: the rule {type(self.rule).__name__} needs '
                    'a saliency map: put LoadSaliencyMap before CAMToPseudoLabel')
        try:
            label = self.rule(rec, image=image, saliency=saliency)
        except ValueError as e:
            raise ValueError(f'image {img_id!r}: {e}') from e
        results['gt_seg_map'] = label.astype(np.uint8)
        results['reduce_zero_label'] = False
        fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in fields:
            fields.append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(rule={self.rule_cfg!r})'
