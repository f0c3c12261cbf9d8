"""Export of OAA cumulative attention maps to the project's CAM file format.

As the official code's ``res.py`` ([C]) does, each cumulative map (uint8, feature
resolution) is resized to the original image size with **bicubic** interpolation (cv2
saturates the uint8 result, so the overshoot below 0 / above 1 is clipped) and
**min-max normalised** to [0, 1]. A constant map becomes all zeros (no NaN).

References: docs/methods/oaa.md, section 'References'.
"""
import os
import os.path as osp
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from mmwsss.models.utils.cam_ops import minmax_normalize_cams, normalize_cams
from mmwsss.utils.cam_io import cam_path, save_cam

__all__ = ['upsample_attention', 'export_attention_maps']


def upsample_attention(maps: np.ndarray,
                       size: Sequence[int],
                       interpolation: str = 'bicubic',
                       normalize: str = 'minmax') -> np.ndarray:
    """(K, h, w) maps in [0, 1] (or uint8 x 255) -> (K, H, W) float32 in [0, 1].

    Args:
        maps: stored maps; uint8 arrays are divided by 255.
        size: (H, W) of the original image.
        interpolation: ``'bicubic'`` ([C]) or ``'bilinear'``.
        normalize: ``'minmax'`` ([C]: (x - min) / (max - min) per map, zeros for a
            constant map, :func:`~mmwsss.models.utils.minmax_normalize_cams`) or
            ``'max'`` (:func:`~mmwsss.models.utils.normalize_cams`) or ``'none'``
            (clip only).
    """
    if interpolation not in ('bicubic', 'bilinear'):
        raise ValueError("interpolation must be 'bicubic' or 'bilinear', got "
                         f'{interpolation!r}')
    if normalize not in ('minmax', 'max', 'none'):
        raise ValueError("normalize must be 'minmax', 'max' or 'none', got "
                         f'{normalize!r}')
    a = np.asarray(maps)
    scale = 255. if a.dtype == np.uint8 else 1.
    x = torch.from_numpy(a.astype(np.float32) / scale)
    if x.shape[0] == 0:
        return np.zeros((0, ) + tuple(size), np.float32)
    x = F.interpolate(
        x[None], size=tuple(int(v) for v in size), mode=interpolation,
        align_corners=False)[0].clamp_(0, 1)
    if normalize == 'minmax':
        x = minmax_normalize_cams(x)
    elif normalize == 'max':
        x = normalize_cams(x)
    return x.numpy()


def export_attention_maps(maps: Dict[str, Dict[int, np.ndarray]],
                          ori_shapes: Dict[str, Tuple[int, int]],
                          num_classes: int,
                          out_dir: str,
                          ids: Optional[Iterable[str]] = None,
                          interpolation: str = 'bicubic',
                          normalize: str = 'minmax',
                          overwrite: bool = True,
                          progress: bool = False) -> int:
    """Write one CAM file per image (see ``docs/cam_format.md``).

    Args:
        maps: ``{img_id: {class: (h, w) uint8 map}}``.
        ori_shapes: ``{img_id: (H, W)}`` original image sizes.
        num_classes: number of foreground classes.
        out_dir: output folder (created).
        ids: the image ids to export (default: all of ``maps``).
        overwrite: rewrite existing files (else skip them).

    Returns:
        the number of files written.
    """
    os.makedirs(out_dir, exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise PermissionError(f'cannot write to the CAM folder {out_dir!r}')
    ids = sorted(maps) if ids is None else list(ids)
    it = ids
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(ids))
    written = 0
    for img_id in it:
        path = cam_path(out_dir, img_id)
        if not overwrite and osp.exists(path):
            if progress:
                bar.update()
            continue
        if img_id not in ori_shapes:
            raise KeyError(f'image {img_id!r} has attention maps but no recorded '
                           'original size')
        per_cls = maps.get(img_id, {})
        labels = np.array(sorted(per_cls), dtype=np.int64)
        h, w = ori_shapes[img_id]
        if len(labels):
            stack = np.stack([per_cls[int(c)] for c in labels])
            cams = upsample_attention(stack, (h, w), interpolation, normalize)
        else:
            cams = np.zeros((0, h, w), np.float32)
        save_cam(path, cams, labels, num_classes)
        written += 1
        if progress:
            bar.update()
    return written
