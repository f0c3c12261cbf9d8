"""Small, dependency-light file helpers shared by the datasets, converters and tools.

Every writer here is atomic: it writes to a temporary file in the destination folder and
renames it into place, so an interrupted run never leaves a half-written file behind.
"""
import contextlib
import os
import os.path as osp
import re
import tempfile
from typing import Dict, Iterable, Optional, Sequence

import numpy as np
from PIL import Image

__all__ = [
    'shown_ids',
    'MissingIdError', 'atomic_write', 'save_png_atomic', 'save_jpg_atomic', 'voc_palette',
    'load_class_labels', 'save_class_labels', 'read_split_ids',
    'write_split_ids', 'labels_from_mask', 'read_voc_xml', 'voc_xml_names'
]


def shown_ids(ids, n: int = 5) -> str:
    """The first ``n`` ids, comma-separated, `` ...`` when there are more (error
    messages that name a few of many missing ids)."""
    ids = list(ids)
    return ', '.join(ids[:n]) + (' ...' if len(ids) > n else '')


class MissingIdError(KeyError):
    """A ``KeyError`` for an image id missing from a table, with a readable message."""

    def __str__(self):
        return str(self.args[0]) if self.args else ''


def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(path: str) -> int:
    """The mode ``open(path, 'w')`` would give: the existing file's, else 0o666
    less the umask (``mkstemp`` creates 0o600 files, unreadable by a group)."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o7777
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb'):
    """Open a temporary file next to ``path``; rename it to ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and ``path`` is left untouched. The file gets the permissions a plain ``open``
    would give it (umask; an existing file keeps its mode).
    """
    path = osp.abspath(path)
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    # '.<name>.<pid>-<random>.tmp': the pid tells a later run whether the writer is
    # still alive (remove_stale_temp_files)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.{os.getpid()}-', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError) and not e.filename and e.errno:
            # e.g. ENOSPC from a write: say which file could not be written
            raise OSError(e.errno, e.strerror or str(e), path) from e
        raise


_TEMP_RE = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)-[^.]+\.tmp$')
_OLD_TEMP_RE = re.compile(r'^\.(?P<name>.+)\.[^.]+\.tmp$')


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temp_files(folder: str, suffix: str = '',
                            older_than: Optional[float] = None) -> int:
    """Delete the :func:`atomic_write` temporary files of *dead* writers in
    ``folder`` (a run killed with SIGKILL or by a power loss leaves them); returns
    how many were removed.

    A temporary file names its writer's pid: files of a process that is still running
    -- e.g. another run writing into the same folder at the same time -- are kept.
    Temporary files without a pid (older mmwsss) are removed only if they were last
    modified before ``older_than`` (a ``time.time()``, e.g. the start of this run).

    Args:
        folder: the output folder.
        suffix: only files written for ``*<suffix>`` (e.g. ``'.png'``).
        older_than: see above; None keeps pid-less files.
    """
    if not osp.isdir(folder):
        return 0
    removed = 0
    for entry in os.listdir(folder):
        if not (entry.startswith('.') and entry.endswith('.tmp')):
            continue
        path = osp.join(folder, entry)
        m = _TEMP_RE.match(entry)
        if m:
            if not m.group('name').endswith(suffix) or _pid_alive(
                    int(m.group('pid'))):
                continue
        else:
            m = _OLD_TEMP_RE.match(entry)
            if not m or not m.group('name').endswith(suffix) or older_than is None:
                continue
            with contextlib.suppress(OSError):
                if os.stat(path).st_mtime >= older_than:
                    continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
            removed += 1
    return removed


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved), shape (num_colors, 3) uint8."""
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for i in range(num_colors):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def save_png_atomic(path: str,
                    array: np.ndarray,
                    palette: Optional[np.ndarray] = None) -> None:
    """Save a uint8 array as PNG ('P' mode with ``palette`` for label maps)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f'{path}: expected a uint8 array, got {array.dtype}')
    img = Image.fromarray(array)
    if palette is not None:
        if array.ndim != 2:
            raise ValueError(f'{path}: a palette PNG needs a 2-D label map')
        img = img.convert('P')
        img.putpalette(np.asarray(palette, dtype=np.uint8).flatten().tolist())
    with atomic_write(path) as f:
        img.save(f, format='PNG')


def save_jpg_atomic(path: str, array: np.ndarray, quality: int = 95) -> None:
    """Save an RGB uint8 array as JPEG."""
    with atomic_write(path) as f:
        Image.fromarray(array).save(f, format='JPEG', quality=quality)


def save_class_labels(path: str, labels: Dict[str, np.ndarray]) -> None:
    """Write the WSSS class-label file (``cls_labels.npy``).

    The format is the one of psa / irn / EDAM: a pickled ``dict`` saved with
    ``np.save`` that maps the image id (str) to a float32 multi-hot vector over
    the *foreground* classes (index ``c`` is segmentation label ``c + 1``).
    """
    data = {
        str(k): np.asarray(v, dtype=np.float32)
        for k, v in sorted(labels.items())
    }
    with atomic_write(path) as f:
        np.save(f, data, allow_pickle=True)


def _irn_int_id(img_id: str) -> Optional[int]:
    """irn's integer encoding of VOC ids: '2007_000032' -> 2007000032."""
    if len(img_id) == 11 and img_id[4] == '_' and img_id.replace('_', '').isdigit():
        return int(img_id[:4] + img_id[5:])
    return None


#: file suffix of the text class-label format (OAA's ``train_cls.txt``)
CLASS_LIST_SUFFIX = '.txt'


def _read_class_list(path: str, num_classes: Optional[int]) -> Dict[str, np.ndarray]:
    """Parse a text class-label list: per line an image id followed by its 0-based
    foreground class indices (OAA's ``data/voc12/train_cls.txt``: ``2007_000032 0
    14``). The id may also be a path (``/JPEGImages/2007_000032.jpg``); blank lines
    and ``#`` comments are skipped. Every index must be an integer in
    ``0..num_classes-1``; an error names the file and the line."""
    if num_classes is None:
        raise ValueError(
            f'class-label list {path!r}: a text list of class indices does not say '
            'how many classes there are; pass num_classes (the datasets pass their '
            'number of foreground classes)')
    data, where = {}, {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            tokens = line.split()
            img_id = osp.splitext(osp.basename(tokens[0]))[0]
            vec = np.zeros(num_classes, np.float32)
            for tok in tokens[1:]:
                try:
                    idx = int(tok)
                except ValueError:
                    idx = None
                if idx is None or not 0 <= idx < num_classes:
                    raise ValueError(
                        f'class-label list {path!r}, line {lineno}: {tok!r} is not '
                        f'a class index in 0..{num_classes - 1} (each line is an '
                        'image id followed by its 0-based foreground class indices, '
                        f'e.g. "2007_000032 0 14"; this dataset has {num_classes} '
                        'foreground classes)')
                vec[idx] = 1
            if img_id in data and not np.array_equal(data[img_id], vec):
                raise ValueError(
                    f'class-label list {path!r}: image id {img_id!r} is listed on '
                    f'lines {where[img_id]} and {lineno} with different classes')
            data[img_id], where[img_id] = vec, lineno
    if not data:
        raise ValueError(f'class-label list {path!r} lists no image')
    return data


class ClassLabelFile:
    """Read access to a class-label file, tolerant of psa (str keys) and irn
    (int keys, '2007_000032' -> 2007000032) conventions.

    Two formats: the ``.npy`` dict ``{image id: multi-hot vector}`` of psa / irn /
    EDAM (:func:`save_class_labels`), and a ``.txt`` list with one line per image,
    the id followed by its 0-based foreground class indices (OAA's ``train_cls.txt``;
    ``num_classes`` is then required, as the list does not give it)."""

    def __init__(self, path: str, num_classes: Optional[int] = None):
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'class-label file {path!r} does not exist: generate it with '
                'tools/dataset_converters/voc_aug.py (VOC), coco_wsss.py (COCO) or '
                "use label_source='mask'/'xml' in the dataset config")
        self.path = path
        if path.lower().endswith(CLASS_LIST_SUFFIX):
            self._data = _read_class_list(path, num_classes)
            self.num_classes = int(num_classes)
            return
        try:
            obj = np.load(path, allow_pickle=True)
            data = obj.item() if isinstance(obj, np.ndarray) else obj
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f'class-label file {path!r} could not be read ({e}); expected a '
                'dict {image id: multi-hot vector} saved with np.save, or a .txt '
                'list of "<image id> <class index> ..." lines') from e
        if not isinstance(data, dict) or not data:
            raise ValueError(
                f'class-label file {path!r} must hold a non-empty dict '
                '{image id: multi-hot vector}')
        self._data = {}
        for k, v in data.items():
            key = k.decode() if isinstance(k, bytes) else k
            self._data[key] = np.asarray(v, dtype=np.float32).reshape(-1)
        dims = {v.shape[0] for v in self._data.values()}
        if len(dims) != 1:
            raise ValueError(f'class-label file {path!r} mixes vector lengths '
                             f'{sorted(dims)}')
        self.num_classes = dims.pop()
        # multi-hot vectors only: a 2, a -1 or a NaN is a broken file, not a label
        bad = [k for k, v in self._data.items()
               if not np.isin(v, (0.0, 1.0)).all()]
        if bad:
            shown = ', '.join(
                f'{k!r}: {self._data[k][~np.isin(self._data[k], (0.0, 1.0))][:3]}'
                for k in bad[:5])
            raise ValueError(
                f'class-label file {path!r}: {len(bad)} image(s) have values other '
                f'than 0 / 1 in their multi-hot label vector ({shown}'
                f'{" ..." if len(bad) > 5 else ""}). Regenerate the file '
                '(tools/dataset_converters/) or fix these entries')

    def __len__(self):
        return len(self._data)

    def __contains__(self, img_id):
        return self.get(img_id) is not None

    def get(self, img_id: str) -> Optional[np.ndarray]:
        if img_id in self._data:
            return self._data[img_id]
        int_id = _irn_int_id(img_id)
        if int_id is not None and int_id in self._data:
            return self._data[int_id]
        return None

    def __getitem__(self, img_id: str) -> np.ndarray:
        v = self.get(img_id)
        if v is None:
            raise MissingIdError(
                f'image id {img_id!r} is not in the class-label file '
                f'{self.path!r}: regenerate the file for this split or remove '
                'the id from the split list')
        return v


def load_class_labels(path: str,
                      num_classes: Optional[int] = None) -> ClassLabelFile:
    """Load a class-label file: the ``.npy`` dict of :func:`save_class_labels`, or a
    ``.txt`` list of ``<image id> <0-based class index> ...`` lines (OAA's
    ``train_cls.txt``), which needs ``num_classes`` (foreground classes)."""
    return ClassLabelFile(path, num_classes)


def read_split_ids(path: str) -> list:
    """Read image ids from a split list.

    Accepted line forms (first whitespace-separated token is used):
    ``2007_000032`` (VOC/irn), ``/JPEGImages/2007_000032.jpg /SegmentationClassAug/..``
    (psa/deeplab) and ``2007_000032 0 14`` (OAA's train_cls.txt).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'split file {path!r} does not exist: check `data_root` and '
            '`ann_file` in the dataset config')
    ids = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            token = line.split()[0]
            ids.append(osp.splitext(osp.basename(token))[0])
    if not ids:
        raise ValueError(f'split file {path!r} lists no image ids')
    return ids


def write_split_ids(path: str, ids: Iterable[str]) -> None:
    with atomic_write(path, 'w') as f:
        for i in ids:
            f.write(f'{i}\n')


def labels_from_mask(mask: np.ndarray,
                     num_fg_classes: int,
                     ignore_index: int = 255,
                     source: str = '') -> np.ndarray:
    """Multi-hot foreground vector from a label map (0 = bg, 1..K, ignore)."""
    values = np.unique(mask)
    values = values[(values != 0) & (values != ignore_index)]
    if values.size and values.max() > num_fg_classes:
        raise ValueError(
            f'{source or "mask"}: label {int(values.max())} is beyond the '
            f'{num_fg_classes} foreground classes of the dataset')
    vec = np.zeros(num_fg_classes, dtype=np.float32)
    vec[values.astype(np.int64) - 1] = 1
    return vec


class ImageFileError(ValueError):
    """An image / label file that cannot be decoded; the message names it."""


@contextlib.contextmanager
def decoding(path: str, what: str = 'image'):
    """Turn a decoder error while reading ``path`` into :class:`ImageFileError`
    naming the file (PIL says only "image file is truncated")."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, ImageFileError):
            raise
        raise ImageFileError(
            f'{path}: cannot decode the {what} ({type(e).__name__}: {e}); the file is '
            'damaged: re-extract or regenerate it') from e


def read_label_png(path: str) -> np.ndarray:
    """Read a single-channel label PNG (palette indices, not colours); a damaged
    file is an :class:`ImageFileError` naming it."""
    with decoding(path, 'label map'), Image.open(path) as img:
        return np.array(img)


def read_voc_xml(path: str) -> dict:
    """Parse a VOC XML annotation: the image size and every object.

    Returns ``dict(size=(width, height) or None, objects=[...])`` with, per object
    (document order, *difficult ones included*), ``name`` (stripped), ``difficult``
    (bool; a missing tag is 0) and ``bbox``: ``(xmin, ymin, xmax, ymax)`` as floats
    in VOC's 1-based, inclusive pixel coordinates, from the object's own
    ``<bndbox>`` (not those of ``person`` ``<part>`` children), or None when the
    object has no readable box. Objects without a name are skipped. A file that is
    not XML is a ``ValueError`` naming it.
    """
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f'{path}: not a valid VOC XML annotation ({e})') from e

    def number(node, tag):
        text = node.findtext(tag) if node is not None else None
        try:
            return float(text)
        except (TypeError, ValueError):
            return None

    size_node = root.find('size')
    w, h = number(size_node, 'width'), number(size_node, 'height')
    size = (int(w), int(h)) if w and h and w > 0 and h > 0 else None
    objects = []
    for obj in root.iter('object'):
        name = obj.findtext('name')
        if not name:
            continue
        box = obj.find('bndbox')
        coords = [number(box, t) for t in ('xmin', 'ymin', 'xmax', 'ymax')]
        difficult = number(obj, 'difficult')
        objects.append(
            dict(name=name.strip(),
                 difficult=bool(difficult),
                 bbox=None if None in coords else tuple(coords)))
    return dict(size=size, objects=objects)


def voc_xml_names(path: str) -> Sequence[str]:
    """All object names in a VOC XML annotation (difficult ones included)."""
    return [obj['name'] for obj in read_voc_xml(path)['objects']]


def data_info_id(info: dict) -> str:
    """The image id of a dataset item (``img_id``, else the image file stem)."""
    if info.get('img_id'):
        return str(info['img_id'])
    return osp.splitext(osp.basename(info['img_path']))[0]


def data_info_gt_path(info: dict) -> Optional[str]:
    """The GT mask of a dataset item: ``gt_seg_map_path`` (mmwsss datasets with a
    pseudo-label folder), else ``seg_map_path`` of a plain dataset; None if none."""
    if info.get('gt_seg_map_path'):
        return info['gt_seg_map_path']
    if 'pseudo_label_path' not in info:
        return info.get('seg_map_path')
    return None
