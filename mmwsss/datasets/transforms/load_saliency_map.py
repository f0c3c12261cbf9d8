import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mmwsss.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadSaliencyMap(BaseTransform):
    """Load the saliency map of ``results['saliency_path']`` as ``gt_saliency``.

    The map is kept as uint8 (0..255) and registered in ``seg_fields``;
    :class:`PackWSSSInputs` scales it to [0, 1]. Only MMSeg's own geometric
    transforms (``RandomCrop``, ``RandomRotate``, ...) move ``seg_fields``: mmcv's
    ``Resize`` / ``RandomResize`` / ``RandomFlip`` move ``gt_seg_map`` alone, so use the
    map before them (e.g. in :class:`CAMToPseudoLabel`) or align it from the recorded
    geometry. MMSeg's ``Pad`` fills segmentation fields with 255 (= fully salient).

    Required keys: ``saliency_path`` (set by the dataset from
    ``data_prefix.saliency_path``). Added keys: ``gt_saliency``.
    """

    def transform(self, results: dict) -> dict:
        path = results.get('saliency_path')
        if path is None:
            raise KeyError(
                f"image id {results.get('img_id')!r} has no saliency map: set "
                'data_prefix.saliency_path in the dataset config')
        try:
            with Image.open(path) as img:
                sal = np.array(img.convert('L'))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"saliency map {path!r} for image id {results.get('img_id')!r} "
                'does not exist') from None
        img_shape = results.get('img_shape', results.get('ori_shape'))
        if img_shape is not None and tuple(sal.shape) != tuple(img_shape[:2]):
            raise ValueError(
                f'saliency map {path!r} has shape {sal.shape} but image id '
                f"{results.get('img_id')!r} is {tuple(img_shape[:2])}: saliency "
                'maps must be at original image size')
        results['gt_saliency'] = sal
        results.setdefault('seg_fields', []).append('gt_saliency')
        return results
