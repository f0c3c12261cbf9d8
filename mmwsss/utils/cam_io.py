"""The one CAM file format of mmwsss (see docs/cam_format.md).

Every method (plain CAM, OAA cumulative maps, IAM maps, GAIN, EDAM, VWL) ends in this
format, so the pseudo-label stage and the seed metric never know which method made the
seeds. One file per image id: ``<cam_dir>/<img_id>.npz`` (NumPy ``.npz``), holding

=================  ===========  ====================================================
key                dtype        meaning
=================  ===========  ====================================================
``cams``           float16      (K, H, W) maps in [0, 1] at the *original* image size,
                                one per listed class, each max-normalised
``labels``         int16        (K,) foreground class indices of the maps, ascending
                                (0-based: index ``c`` is segmentation label ``c + 1``)
``num_classes``    int32        scalar: number of foreground classes of the dataset
``scores``         float32      optional (num_classes,) image-level class scores
``version``        int32        scalar: format version (1)
=================  ===========  ====================================================

K may be 0 (an image with no listed class). Files are written atomically (temporary
file + rename), so a crashed export never leaves a truncated file behind.
"""
import os.path as osp
import zipfile
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .io import atomic_write

CAM_FORMAT_VERSION = 1
CAM_SUFFIX = '.npz'

__all__ = [
    'CamRecord', 'CamFileError', 'save_cam', 'load_cam', 'cam_path',
    'CAM_FORMAT_VERSION', 'CAM_SUFFIX'
]


class CamFileError(ValueError):
    """A CAM file that cannot be used: unreadable (truncated, empty, not a zip),
    not in the format, or with values that cannot be right (NaN / inf, outside
    [0, 1]). The message names the file."""


@dataclass
class CamRecord:
    """CAMs of one image, as stored in a CAM file."""
    cams: np.ndarray  # (K, H, W) float32 in [0, 1]
    labels: np.ndarray  # (K,) int64, 0-based foreground class indices
    num_classes: int
    scores: Optional[np.ndarray] = None  # (num_classes,) float32

    def __post_init__(self):
        order = np.argsort(self.labels, kind='stable')
        if (order != np.arange(len(order))).any():
            self.labels = self.labels[order]
            self.cams = self.cams[order]

    @property
    def shape(self):
        return tuple(self.cams.shape[1:])

    def dense(self) -> np.ndarray:
        """(num_classes, H, W) float32 with zeros for classes without a map."""
        out = np.zeros((self.num_classes, ) + self.shape, np.float32)
        if len(self.labels):
            out[self.labels] = self.cams
        return out

    def seed(self, bg_threshold: float) -> np.ndarray:
        """Seed label map with a constant background score (irn/VWL/EDAM rule):
        ``argmax([bg_threshold, cams])``, 0 = background, ``c + 1`` = class c.
        Ties go to background, then to the lowest class index (labels are stored
        in ascending order)."""
        if not len(self.labels):
            return np.zeros(self.shape, np.uint8)
        idx = self.cams.argmax(0)
        best = np.take_along_axis(self.cams, idx[None], 0)[0]
        seed = (self.labels[idx] + 1).astype(np.uint8)
        seed[best <= bg_threshold] = 0
        return seed


def cam_path(cam_dir: str, img_id: str) -> str:
    return osp.join(cam_dir, img_id + CAM_SUFFIX)


def save_cam(path: str,
             cams: np.ndarray,
             labels: Sequence[int],
             num_classes: int,
             scores: Optional[np.ndarray] = None,
             compress: bool = True) -> None:
    """Write one CAM file (atomically).

    Args:
        path: destination, usually ``cam_path(cam_dir, img_id)``.
        cams: (K, H, W) maps in [0, 1] at the original image size.
        labels: K foreground class indices (0-based) of the maps.
        num_classes: number of foreground classes of the dataset.
        scores: optional (num_classes,) class scores.
        compress: zip-deflate the arrays (smaller files, slower writes).
    """
    cams = np.asarray(cams, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != labels.shape[0]:
        raise ValueError(
            f'{path}: cams must be (K, H, W) with K = len(labels) = '
            f'{labels.shape[0]}, got {cams.shape}')
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f'{path}: class index {int(labels.max())} out of range '
                         f'for {num_classes} foreground classes')
    if len(set(labels.tolist())) != labels.size:
        raise ValueError(f'{path}: duplicate class indices {labels.tolist()}')
    if cams.size and (not np.isfinite(cams).all() or cams.min() < 0
                      or cams.max() > 1 + 1e-3):
        raise ValueError(f'{path}: CAM values must be finite and in [0, 1]')
    # stored in ascending class order, so that ties in seed() go to the lowest class
    order = np.argsort(labels, kind='stable')
    cams, labels = cams[order], labels[order]
    arrays = dict(
        cams=np.clip(cams, 0, 1).astype(np.float16),
        labels=labels.astype(np.int16),
        num_classes=np.int32(num_classes),
        version=np.int32(CAM_FORMAT_VERSION))
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if scores.shape[0] != num_classes:
            raise ValueError(f'{path}: scores must have {num_classes} entries')
        arrays['scores'] = scores
    saver = np.savez_compressed if compress else np.savez
    with atomic_write(path) as f:
        saver(f, **arrays)


def load_cam(path: str) -> CamRecord:
    """Read one CAM file.

    Raises:
        FileNotFoundError: no such file.
        CamFileError: a file that cannot be decoded (truncated, zero bytes, not a
            ``.npz``), is not in the format, or holds values that cannot be right
            (NaN / inf, outside [0, 1]); the message names the file and says to
            export it again.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'CAM file {path!r} does not exist')
    redo = 'export it again (or delete it and re-run the export)'
    try:
        with np.load(path, allow_pickle=False) as z:
            version = int(z['version'])
            if version > CAM_FORMAT_VERSION:
                raise ValueError(f'format version {version} is newer than this '
                                 f'mmwsss ({CAM_FORMAT_VERSION})')
            cams = z['cams'].astype(np.float32)
            labels = z['labels'].astype(np.int64)
            num_classes = int(z['num_classes'])
            scores = z['scores'].astype(np.float32) if 'scores' in z else None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile,
            zlib.error) as e:
        raise CamFileError(f'{path}: not a readable mmwsss CAM file '
                           f'({type(e).__name__}: {e}); {redo}') from e
    if cams.ndim != 3 or cams.shape[0] != labels.shape[0]:
        raise CamFileError(f'{path}: inconsistent cams {cams.shape} / labels '
                           f'{labels.shape}; {redo}')
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CamFileError(f'{path}: class index {int(labels.max())} out of range '
                           f'for {num_classes} foreground classes')
    bad = int((~np.isfinite(cams)).sum())
    if bad:
        raise CamFileError(f'{path}: {bad} CAM value(s) are NaN or inf; {redo}')
    if cams.size and (cams.min() < 0 or cams.max() > 1 + 1e-3):
        raise CamFileError(
            f'{path}: CAM values must be in [0, 1], found [{cams.min():g}, '
            f'{cams.max():g}]; {redo}')
    return CamRecord(cams, labels, num_classes, scores)
