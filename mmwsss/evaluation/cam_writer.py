import os
from typing import Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmwsss.registry import METRICS
from mmwsss.utils.cam_io import cam_path, save_cam


@METRICS.register_module()
class CAMWriter(BaseMetric):
    """Write the CAMs predicted by a classifier to the project's CAM file format.

    Used as ``test_evaluator`` (``tools/export_cams.py`` sets it up): every rank
    writes the files of the images its sampler gave it, one atomic write per image id
    (``<out_dir>/<img_id>.npz``, see docs/cam_format.md), so the export runs
    distributed and a crash never leaves a truncated file. Reads
    ``pred_cams`` (K, H, W), ``pred_cam_labels`` and ``pred_score`` of each data
    sample (set by :class:`~mmwsss.models.classifiers.WSClassifier`).

    Args:
        out_dir (str): output folder (created if missing).
        compress (bool): zip-deflate the arrays. Defaults to True.
    """
    default_prefix = 'cam_export'

    def __init__(self,
                 out_dir: str,
                 compress: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.out_dir = out_dir
        self.compress = compress
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as e:
            raise OSError(f'CAMWriter: cannot create the output folder '
                          f'{out_dir!r}: {e}') from e
        if not os.access(out_dir, os.W_OK):
            raise PermissionError(
                f'CAMWriter: the output folder {out_dir!r} is not writable')

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            img_id = ds.get('img_id')
            if img_id is None:
                raise KeyError('CAMWriter needs metainfo img_id: use '
                               'PackWSSSInputs in the pipeline')
            cams = ds['pred_cams']['data'].float().cpu().numpy()
            labels = ds['pred_cam_labels'].cpu().numpy().astype(np.int64)
            scores = ds['pred_score'].float().cpu().numpy()
            save_cam(
                cam_path(self.out_dir, img_id),
                cams[labels],
                labels,
                num_classes=cams.shape[0],
                scores=scores,
                compress=self.compress)
            self.results.append(1)

    def compute_metrics(self, results: list) -> dict:
        n = int(sum(results))
        print_log(f'{n} CAM files written to {self.out_dir}', logger='current')
        return dict(written=n)
