from typing import Optional

from mmcv.transforms import BaseTransform
from mmseg.datasets.transforms import LoadAnnotations

from mmwsss.registry import TRANSFORMS
from ..strong_subsets import voc_box_masks
from .load_saliency_map import LoadSaliencyMap


@TRANSFORMS.register_module()
class LoadExtraSupervision(BaseTransform):
    """Load the extra supervision of GAIN_ext for the images of the strong subsets.

    GAIN_ext (Li et al., "Tell Me Where to Look: Guided Attention Inference Network",
    CVPR 2018, §3.2-3.3) supervises the attention maps of a few images directly:
    with pixel masks (``H^c``, Eq. 7) or with boxes and a saliency map (``B^c`` and
    ``S``, Eq. 9). The dataset flags those images (``strong_subsets``, items with
    ``strong_pixel`` / ``strong_box``); this transform loads, by flag:

    * ``strong_pixel``: the GT mask (``gt_seg_map_path``, i.e.
      ``data_prefix.seg_map_path``, even when a pseudo-label folder is set) with
      MMSeg's ``LoadAnnotations``: ``gt_seg_map`` (0 background, ``c + 1`` class
      ``c``, 255 ignore, VOC's border band included);
    * ``strong_box``: ``gt_box_mask``, (H, W, K) uint8, channel ``c`` = 1 inside any
      box of foreground class ``c`` (the dataset's ``boxes`` from the VOC XML, scaled
      from the XML ``<size>`` to the loaded image; difficult boxes included unless
      ``with_difficult=False``), and the saliency map ``gt_saliency`` with
      :class:`LoadSaliencyMap` (unless the pipeline loaded it already);
    * neither: nothing.

    Each loaded map is added to ``seg_fields``, so MMSeg's geometric transforms
    (``Resize`` / ``RandomResize`` built in the ``mmwsss`` or ``mmseg`` scope,
    ``RandomFlip``, ``RandomCrop``, ``RandomRotFlip``) move it with the image, and
    :class:`PackWSSSInputs` packs ``gt_sem_seg`` (1, H, W), ``gt_box_mask`` (K, H, W)
    and ``gt_saliency`` (1, H, W) at the network-input size, with the meta flags
    ``strong_pixel`` / ``strong_box``. Put it right after ``LoadImageFromFile``,
    before any geometric transform, and do not add ``LoadAnnotations`` to the
    pipeline (the weak images must not carry a mask). MMSeg's ``RandomCrop`` must
    keep ``cat_max_ratio=1.0`` (its default): the category check reads
    ``gt_seg_map``, which weak and box images do not have.

    Required keys: ``img``, ``img_shape``, ``ori_shape``, ``gt_label``,
    ``strong_pixel``, ``strong_box``; ``gt_seg_map_path`` (pixel items);
    ``boxes``, ``box_labels``, ``box_difficult``, ``box_ann_size``,
    ``saliency_path`` (box items). Added keys: ``gt_seg_map`` / ``gt_box_mask``,
    ``gt_saliency``, ``seg_fields``.

    Args:
        with_difficult (bool): keep the boxes of objects flagged difficult (the WSSS
            convention of the image-level labels). Defaults to True.
        imdecode_backend (str): image decoder of the mask PNGs (``LoadAnnotations``).
            Defaults to ``'pillow'`` (palette indices, not colours).
        backend_args (dict, optional): file backend of ``LoadAnnotations``.
    """

    def __init__(self,
                 with_difficult: bool = True,
                 imdecode_backend: str = 'pillow',
                 backend_args: Optional[dict] = None) -> None:
        self.with_difficult = bool(with_difficult)
        self.load_mask = LoadAnnotations(
            imdecode_backend=imdecode_backend, backend_args=backend_args)
        self.load_saliency = LoadSaliencyMap()

    def __repr__(self):
        return (f'{self.__class__.__name__}(with_difficult={self.with_difficult}, '
                f'imdecode_backend={self.load_mask.imdecode_backend!r})')

    @staticmethod
    def _where(results: dict) -> str:
        return f"image id {results.get('img_id')!r}"

    def transform(self, results: dict) -> dict:
        where = self._where(results)
        if 'strong_pixel' not in results and 'strong_box' not in results:
            raise KeyError(
                f'LoadExtraSupervision: {where} has no strong_pixel / strong_box '
                "flag: set the dataset's strong_subsets=dict(pixel='...txt', "
                "box='...txt') (docs/datasets.md, section 'Strong subsets')")
        if 'gt_seg_map' in results:
            raise ValueError(
                f'LoadExtraSupervision: {where} already has a gt_seg_map: remove '
                'LoadAnnotations from the training pipeline (with strong_subsets '
                'only the pixel-labelled images carry a mask; this transform loads '
                'it)')
        shape = tuple(results['img'].shape[:2])
        if 'ori_shape' in results and shape != tuple(results['ori_shape'][:2]):
            raise ValueError(
                f'LoadExtraSupervision: {where}: the image is {shape} but was '
                f"loaded at {tuple(results['ori_shape'][:2])}: put this transform "
                'right after LoadImageFromFile, before any geometric transform')
        seg_fields = results.setdefault('seg_fields', [])
        if results.get('strong_pixel'):
            gt_path = results.get('gt_seg_map_path')
            if gt_path is None:
                raise KeyError(
                    f'LoadExtraSupervision: {where} is in strong_subsets.pixel but '
                    'has no GT mask: set data_prefix.seg_map_path in the dataset')
            ann = dict(
                seg_map_path=gt_path,
                reduce_zero_label=results.get('reduce_zero_label', False),
                label_map=results.get('label_map'),
                seg_fields=[])
            self.load_mask(ann)
            mask = ann['gt_seg_map']
            if tuple(mask.shape[:2]) != shape:
                raise ValueError(
                    f'LoadExtraSupervision: the GT mask {gt_path!r} is '
                    f'{tuple(mask.shape[:2])} but {where} is {shape}')
            results['gt_seg_map'] = mask
            seg_fields.append('gt_seg_map')
        if results.get('strong_box'):
            if 'boxes' not in results:
                raise KeyError(
                    f'LoadExtraSupervision: {where} is in strong_subsets.box but its '
                    'data info has no boxes (a dataset without strong_subsets '
                    'support?)')
            results['gt_box_mask'] = voc_box_masks(
                results['boxes'], results['box_labels'],
                num_classes=len(results['gt_label']), shape=shape,
                ann_size=results.get('box_ann_size'),
                difficult=results.get('box_difficult'),
                with_difficult=self.with_difficult)
            seg_fields.append('gt_box_mask')
            if 'gt_saliency' not in results:
                self.load_saliency(results)
        return results
