from typing import Optional

from mmcv.transforms import BaseTransform

from mmwsss.registry import TRANSFORMS
from mmwsss.utils.cam_io import cam_path, load_cam


def cam_file_of(transform: str, results: dict, cam_dir: Optional[str],
                prefix_key: str) -> str:
    """The CAM file a loading transform reads: ``<cam_dir>/<img_id>.npz`` when the
    transform was given ``cam_dir`` (an override), else ``results[prefix_key]``, the
    path the mmwsss datasets set from ``data_prefix[prefix_key]``."""
    img_id = results.get('img_id')
    if cam_dir is not None:
        if img_id is None:
            raise KeyError(f'{transform} needs results["img_id"] (the mmwsss '
                           'datasets set it)')
        return cam_path(cam_dir, str(img_id))
    path = results.get(prefix_key)
    if path is None:
        raise KeyError(
            f'{transform}: image id {img_id!r} has no {prefix_key!r}: set the '
            f'folder as data_prefix.{prefix_key} of the dataset, e.g. '
            f'train_dataloader = dict(dataset=dict(data_prefix=dict('
            f"{prefix_key}='work_dirs/.../DIR'))) (a relative folder is relative "
            f'to the working directory), or give {transform}(cam_dir=DIR)')
    return path


@TRANSFORMS.register_module()
class LoadCAMFromFile(BaseTransform):
    """Load the CAM file of the image (``<img_id>.npz``, the project's CAM format,
    ``docs/cam_format.md``) as ``results['cam_record']`` (a
    :class:`~mmwsss.utils.cam_io.CamRecord` at the original image size).

    The file is ``results['cam_path']``, set by the mmwsss datasets from their
    ``data_prefix.cam_path`` folder (relative to the working directory; checked at
    start-up, docs/datasets.md). ``cam_dir`` overrides it (the older form).

    Used with :class:`CAMToPseudoLabel` to build pseudo labels on the fly in a
    segmentation pipeline (offline PNGs from ``tools/make_pseudo_labels.py`` remain the
    faster default).

    Args:
        cam_dir (str, optional): folder of CAM files; overrides ``results['cam_path']``.
        num_classes (int, optional): expected number of foreground classes; a CAM file
            made for another dataset is refused.

    Required keys: ``cam_path`` (or ``img_id`` with ``cam_dir``). Added keys:
    ``cam_record``.
    """
    #: the dataset's data_prefix key whose files this transform reads
    DATA_PREFIX_KEY = 'cam_path'

    def __init__(self, cam_dir: Optional[str] = None,
                 num_classes: Optional[int] = None):
        self.cam_dir = cam_dir
        self.num_classes = num_classes

    @property
    def reads_data_prefix(self) -> Optional[str]:
        """The data_prefix key read from ``results`` (None with a ``cam_dir``)."""
        return self.DATA_PREFIX_KEY if self.cam_dir is None else None

    def transform(self, results: dict) -> dict:
        img_id = results.get('img_id')
        path = cam_file_of('LoadCAMFromFile', results, self.cam_dir,
                           self.DATA_PREFIX_KEY)
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
        return (f'{self.__class__.__name__}(cam_dir={self.cam_dir!r}, '
                f'num_classes={self.num_classes})')
