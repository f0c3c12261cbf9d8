"""Id-keyed store of online-accumulated attention maps (OAA [T] §3.2, Eqs. 3-5, 10).

Building block of the OAA accumulation hook: it only stores and fuses maps that are
already in the canonical frame of an image (the original image at feature resolution);
inverting the augmentation is the hook's job.

References: docs/methods/oaa.md, section 'References'.
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

Key = Tuple[str, int]


class AttentionStore:
    """Cumulative attention maps ``M^(i,c)`` keyed by (image id, class index).

    Maps are kept as uint8 (value x 255, rounded), as the official OAA code stores
    them (PNG), so a VOC12 train_aug-sized state (10,582 images, ~1.5 GT classes each,
    about 63x47 at output stride 8) takes about 50 MB. Fusion of a new attention map
    ``A`` with the stored ``M`` (the first accepted map initialises ``M``, Eq. 3):

    * ``'max'`` (default, Eq. 5): ``M_t = max(M_{t-1}, A_t)``;
    * ``'avg'`` (Eq. 10): ``M_t = ((t-1) M_{t-1} + A_t) / t`` with ``t`` the number of
      accepted visits of that (image, class): the paper's ``t`` is the visit (epoch),
      but a visit the gate rejects does not count, or it would shrink ``M``;
    * ``'last'``: ``M_t = A_t`` (the previous accepted attention used by the attention
      drop layer, OAA++ Alg. 1).

    An update may carry a validity mask (the part of the image a random crop showed):
    outside it the stored values are kept (for ``'avg'``, ``t`` counts visits of the
    map, not of each pixel; a documented approximation for cropped views).

    The state is a plain dict of numpy arrays (:meth:`state_dict`), so it is saved
    inside MMEngine checkpoints and loads under torch's ``weights_only`` loader.

    For DistributedDataParallel every rank updates the images its sampler gave it;
    :meth:`pop_dirty` returns the entries a rank changed since the last call and
    :meth:`apply_entries` installs those of the other ranks (each (image, class) is
    visited by one rank per epoch, so the fused values can simply be copied).

    Args:
        fusion (str): ``'max'`` or ``'avg'``.
    """

    def __init__(self, fusion: str = 'max'):
        if fusion not in ('max', 'avg', 'last'):
            raise ValueError(
                f"fusion must be 'max', 'avg' or 'last', got {fusion!r}")
        self.fusion = fusion
        self._maps: Dict[Key, np.ndarray] = {}
        self._counts: Dict[Key, int] = {}
        self._dirty: set = set()

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._maps)

    def __contains__(self, key: Key) -> bool:
        return (str(key[0]), int(key[1])) in self._maps

    def keys(self) -> List[Key]:
        return sorted(self._maps)

    def count(self, img_id: str, cls: int) -> int:
        return self._counts.get((str(img_id), int(cls)), 0)

    def get(self, img_id: str, cls: int) -> Optional[np.ndarray]:
        """The map as float32 in [0, 1], or None."""
        m = self._maps.get((str(img_id), int(cls)))
        return None if m is None else m.astype(np.float32) / 255.

    def items(self):
        """((img_id, class), uint8 map) pairs, sorted by key."""
        return [(k, self._maps[k]) for k in self.keys()]

    def by_image(self) -> Dict[str, Dict[int, np.ndarray]]:
        """``{img_id: {class: uint8 map}}``."""
        out: Dict[str, Dict[int, np.ndarray]] = {}
        for (i, c), m in self._maps.items():
            out.setdefault(i, {})[c] = m
        return out

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self._maps.values())

    # ------------------------------------------------------------------ update
    @staticmethod
    def _quantise(amap: np.ndarray, where: str) -> np.ndarray:
        a = np.asarray(amap, dtype=np.float32)
        if a.ndim != 2:
            raise ValueError(f'{where}: attention map must be 2-D, got {a.shape}')
        if not np.isfinite(a).all():
            raise ValueError(f'{where}: attention map has NaN/inf values')
        return np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)

    def update(self,
               img_id: str,
               cls: int,
               amap: np.ndarray,
               valid: Optional[np.ndarray] = None) -> None:
        """Fuse an accepted attention map (values in [0, 1]) into the store.

        Args:
            img_id: image id.
            cls: 0-based foreground class index.
            amap: (h, w) map in the canonical frame of the image.
            valid: optional (h, w) bool mask of the pixels this visit saw; elsewhere
                the stored map is kept (zeros for a first visit).
        """
        key = (str(img_id), int(cls))
        where = f'image {key[0]!r} class {key[1]}'
        new = self._quantise(amap, where)
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != new.shape:
                raise ValueError(f'{where}: valid mask of shape {valid.shape} '
                                 f'does not match the map {new.shape}')
            if valid.all():
                valid = None
        old = self._maps.get(key)
        if old is None:
            if valid is not None:
                new = np.where(valid, new, 0).astype(np.uint8)
            self._maps[key] = new
            self._counts[key] = 1
        else:
            if old.shape != new.shape:
                raise ValueError(
                    f'{where}: attention map of shape '
                    f'{new.shape} does not match the stored {old.shape} (maps '
                    'must be in the canonical frame of the image)')
            t = self._counts[key] + 1
            if self.fusion == 'max':
                fused = np.maximum(old, new)
            elif self.fusion == 'avg':
                avg = ((t - 1) * old.astype(np.float32) + new) / t
                fused = np.rint(avg).astype(np.uint8)
            else:
                fused = new
            if valid is not None:
                fused = np.where(valid, fused, old).astype(np.uint8)
            self._maps[key] = fused
            self._counts[key] = t
        self._dirty.add(key)

    # ------------------------------------------------------------ distributed
    def pop_dirty(self) -> List[Tuple[str, int, np.ndarray, int]]:
        """Entries changed since the last call: (img_id, cls, uint8 map, count)."""
        out = [(k[0], k[1], self._maps[k], self._counts[k])
               for k in sorted(self._dirty)]
        self._dirty.clear()
        return out

    def apply_entries(self, entries: Iterable[Tuple[str, int, np.ndarray,
                                                    int]]) -> None:
        """Install entries fused on another rank (see :meth:`pop_dirty`)."""
        for img_id, cls, m, count in entries:
            key = (str(img_id), int(cls))
            self._maps[key] = np.asarray(m, dtype=np.uint8)
            self._counts[key] = int(count)

    def merge_ranks(self, per_rank: Sequence[Sequence[Tuple[str, int,
                                                            np.ndarray,
                                                            int]]]) -> None:
        """Merge the :meth:`pop_dirty` lists of all ranks (this one included).

        Normally each (image, class) was updated by one rank since the last merge and
        its entry is copied. A key updated on several ranks (a distributed sampler
        pads its last batch by repeating images) is fused exactly for ``'max'``
        (element-wise max of the ranks' results, which all started from the same
        map); for ``'avg'``/``'last'`` the entry with the most visits (then the
        highest rank) wins.
        """
        merged: Dict[Key, Tuple[np.ndarray, int]] = {}
        for entries in per_rank:
            for img_id, cls, m, count in entries:
                key = (str(img_id), int(cls))
                m = np.asarray(m, dtype=np.uint8)
                if key not in merged:
                    merged[key] = (m, int(count))
                    continue
                pm, pc = merged[key]
                if self.fusion == 'max' and pm.shape == m.shape:
                    merged[key] = (np.maximum(pm, m), max(pc, int(count)))
                elif int(count) >= pc:
                    merged[key] = (m, int(count))
        self.apply_entries(
            (k[0], k[1], m, c) for k, (m, c) in merged.items())

    # ------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict:
        """Flat numpy arrays (a constant number of objects, whatever the size)."""
        keys = self.keys()
        shapes = np.array([self._maps[k].shape for k in keys],
                          dtype=np.int32).reshape(-1, 2)
        data = (np.concatenate([self._maps[k].reshape(-1) for k in keys])
                if keys else np.zeros(0, np.uint8))
        return dict(
            fusion=self.fusion,
            ids=np.array([k[0] for k in keys], dtype=np.str_),
            classes=np.array([k[1] for k in keys], dtype=np.int32),
            counts=np.array([self._counts[k] for k in keys], dtype=np.int32),
            shapes=shapes,
            # a tensor is written byte for byte (a pickled numpy uint8 buffer takes
            # up to 2 bytes per value)
            data=torch.from_numpy(np.ascontiguousarray(data)))

    def load_state_dict(self, state: dict) -> None:
        if state.get('fusion', self.fusion) != self.fusion:
            raise ValueError(
                f"checkpoint attention store uses fusion={state['fusion']!r} but "
                f'this run is configured with {self.fusion!r}')
        ids, classes = state['ids'], state['classes']
        shapes, counts, data = state['shapes'], state['counts'], state['data']
        if isinstance(data, torch.Tensor):
            data = data.cpu().numpy()
        data = np.asarray(data, dtype=np.uint8)
        sizes = shapes[:, 0].astype(np.int64) * shapes[:, 1]
        if sizes.sum() != data.size:
            raise ValueError('corrupt attention store state: map sizes do not '
                             'add up to the data buffer')
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        self._maps, self._counts, self._dirty = {}, {}, set()
        for n, (i, c) in enumerate(zip(ids, classes)):
            key = (str(i), int(c))
            self._maps[key] = np.array(
                data[offsets[n]:offsets[n + 1]], dtype=np.uint8).reshape(
                    int(shapes[n, 0]), int(shapes[n, 1]))
            self._counts[key] = int(counts[n])
