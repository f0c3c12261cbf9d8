from mmseg.datasets.transforms import RandomCrop

from mmwsss.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomCropWithBox(RandomCrop):
    """MMSeg's :class:`RandomCrop` that also records the crop box.

    Adds ``results['crop_bbox'] = (y1, y2, x1, x2)`` in the frame of the image it
    received (e.g. after ``RandomResize``), so online methods (OAA accumulation,
    attention drop) can map network outputs back into the original image frame
    (:func:`mmwsss.utils.geometry.to_canonical`). Keep ``crop_bbox`` in
    ``PackWSSSInputs(meta_keys=...)`` (it is there by default).
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        crop_bbox = self.crop_bbox(results)
        results['img'] = self.crop(img, crop_bbox)
        for key in results.get('seg_fields', []):
            results[key] = self.crop(results[key], crop_bbox)
        results['img_shape'] = results['img'].shape[:2]
        results['crop_bbox'] = tuple(int(v) for v in crop_bbox)
        return results
