from typing import Optional

from mmcv.transforms import BaseTransform

from mmwsss.registry import TRANSFORMS
from mmwsss.utils.cam_io import cam_path, load_cam


@TRANSFORMS.register_module()
class LoadCAMFromFile(BaseTransform):
    """Load the CAM file of the image (``<cam_dir>/<img_id>.npz``, the project's CAM
    format, ``docs/cam_format.md``) as ``results['cam_record']`` (a
    :class:`~mmwsss.utils.cam_io.CamRecord` at the original image size).

    Used with :class:`CAMToPseudoLabel` to build pseudo labels on the fly in a
    segmentation pipeline (offline PNGs from ``tools/make_pseudo_labels.py`` remain the
    faster default).

    Args:
        cam_dir (str): folder of CAM files.
        num_classes (int, optional): expected number of foreground classes; a CAM file
            made for another dataset is refused.

    Required keys: ``img_id``. Added keys: ``cam_record``.
    """

    def __init__(self, cam_dir: str, num_classes: Optional[int] = None):
        self.cam_dir = cam_dir
        self.num_classes = num_classes

    def transform(self, results: dict) -> dict:
        img_id = results.get('img_id')
        if img_id is None:
            raise KeyError('LoadCAMFromFile needs results["img_id"] (mmwsss '
                           'datasets set it)')
        path = cam_path(self.cam_dir, str(img_id))
        try:
            rec = load_cam(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f'image {img_id!r} has no CAM file {path!r}: export the seeds of '
                'this split first (tools/export_cams.py or tools/export_oaa_maps.py)'
            ) from None
        if self.num_classes is not None and rec.num_classes != self.num_classes:
            raise ValueError(
                f'CAM file {path!r} has num_classes={rec.num_classes}, expected '
                f'{self.num_classes}')
        results['cam_record'] = rec
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(cam_dir={self.cam_dir!r})'
