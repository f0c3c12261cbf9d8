import logging
import math
from typing import Iterator, List, Optional, Sized, Tuple

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from torch.utils.data import Sampler

from mmwsss.registry import DATA_SAMPLERS

GROUP_MODES = ('similar', 'random')


def image_classes(dataset: Sized) -> List[Tuple[int, ...]]:
    """Per index of ``dataset``: the foreground classes of the image, the indices
    ``k`` (0-based, background excluded) where its ``gt_label`` (the multi-hot
    image-level label over the K foreground classes in the data info of the WSSS
    datasets) is positive. An error names the first item without ``gt_label``
    and items whose vectors differ in length."""
    out: List[Tuple[int, ...]] = []
    num_classes = None
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if 'gt_label' not in info or info['gt_label'] is None:
            raise ValueError(
                "ClassGroupSampler(mode='similar'): item {} of the dataset ({}) has "
                "no 'gt_label' in its data info (dataset.get_data_info(i)['gt_label'], "
                'the multi-hot image-level label over the K foreground classes); '
                'use a WSSS dataset (VOCWSSSDataset, COCOWSSSDataset, '
                "ToyWSSSDataset) or set data_info['gt_label'] in the dataset's "
                "load_data_list, or use train_dataloader.sampler.mode='random', "
                'which needs no labels'.format(i, type(dataset).__name__))
        vec = np.asarray(info['gt_label']).reshape(-1)
        if num_classes is None:
            num_classes = vec.size
        elif vec.size != num_classes:
            raise ValueError(
                f'ClassGroupSampler: the gt_label of dataset index {i} '
                f'({type(dataset).__name__}) has {vec.size} entries, index 0 has '
                f'{num_classes}: gt_label must be a multi-hot vector over the same '
                'K foreground classes for every item')
        out.append(tuple(int(k) for k in np.flatnonzero(vec > 0)))
    return out


@DATA_SAMPLERS.register_module()
class ClassGroupSampler(Sampler):
    """A distributed sampler of groups of images that share a class.

    EDAM (Wu et al., "Embedded Discriminative Attention Mechanism for Weakly
    Supervised Semantic Segmentation", CVPR 2021, §3.1, §3.3) runs its
    Collaborative Multi-Attention over the tokens of a *group* of B images, by
    default "two similar images" that share at least one image-level class; Table 6
    compares "two random images", a "single image" and "four images". The official
    code reads pairs from a pre-computed list (one pair per GPU). This sampler
    forms the groups on the fly, under DDP and for any batch size:

    * ``mode='similar'``: every labelled image is an **anchor** once per pass, in
      a shuffled order. For each anchor a class ``c`` is drawn uniformly among its
      labels, then ``group_size - 1`` **partners** different from the anchor,
      uniformly among the images that contain ``c`` and without replacement inside
      the group. A group is ``group_size`` consecutive indices, anchor first, and
      all its images share ``c``.
    * ``mode='random'``: every image is an anchor once per pass and the partners
      are uniform among all the other images (Table 6, "two random images"); the
      labels are not read.

    Corner cases (similar mode): an image **without any foreground class** holds
    no class to share; it is **excluded** (never an anchor nor a partner) and a
    warning gives their number. ``c`` is drawn among the anchor's classes that at
    least one other image also holds; an anchor whose classes are all unique to it
    takes its partners uniformly among the other labelled images (a warning gives
    their number; its groups share no class). When fewer other images hold ``c``
    than partners are needed (``group_size`` 3-4), the group takes all of them and
    the remaining partners repeat some of them (drawn uniformly); the anchor is
    never its own partner. The same rule holds in random mode with fewer than
    ``group_size`` images.

    An epoch is ``epoch_repeats`` passes over the anchors, each with its own order
    (the official pair list, about 33,000 steps of 4 pairs, makes each train_aug
    image an anchor about 12.5 times; its README counts images, "25 epochs":
    ``epoch_repeats=12`` or ``13`` makes one sampler epoch about as long). The global sequence of groups depends only
    on ``seed`` and the epoch (as MMEngine's ``DefaultSampler``, ``seed + epoch``)
    and **not on the world size**: it is cut into global batches of
    ``batch_size // group_size`` groups and rank ``r`` takes the global batches
    ``r, r + W, r + 2W, ...`` (``W`` processes). With ``round_up=True`` the
    sequence is padded by repeating its start to a whole number of batches on
    every rank; with ``False`` the incomplete last round of ``W`` batches is
    dropped. Hence ``W`` processes with ``batch_size=b`` see, step by step, the
    same groups as one process with ``batch_size=W * b`` (padding included), a
    group never crosses ranks or batches, and the ranks are disjoint apart from
    the padding. Deterministic and resumable; :meth:`set_epoch` is called by
    MMEngine's ``DistSamplerSeedHook`` before each epoch. ``shuffle=False`` keeps
    the anchors in dataset order (the partners are still drawn at random).

    The model forms the groups from **consecutive** samples of its batch, so
    ``batch_size`` **must equal** ``train_dataloader.batch_size`` (the per-GPU
    batch size, a multiple of ``group_size``;
    :class:`~mmwsss.engine.runner.WSSSRunner` refuses a mismatch when it builds
    the loader), and the model's group size must equal ``group_size``::

        batch_size = 8  # 4 pairs per GPU
        train_dataloader = dict(
            batch_size=batch_size,
            sampler=dict(type='ClassGroupSampler', batch_size=batch_size,
                         group_size=2, mode='similar', epoch_repeats=1,
                         shuffle=True),
            dataset=dict(type='VOCWSSSDataset', ...))

    Args:
        dataset: the training dataset; in similar mode ``get_data_info(i)`` must
            hold ``gt_label`` (multi-hot over the K foreground classes, as the
            WSSS datasets). Injected by the Runner.
        batch_size (int): the per-GPU batch size of the data loader, a multiple
            of ``group_size``.
        group_size (int): images per group, B in EDAM, 1 to 4. Defaults to 2.
        mode (str): ``'similar'`` (partners share a class with the anchor) or
            ``'random'``. Defaults to ``'similar'``.
        shuffle (bool): shuffle the anchors. Defaults to True.
        seed (int, optional): the random seed, the same on every rank; None draws
            one and synchronises it over the ranks (as ``DefaultSampler``).
            Injected by the Runner from ``randomness.seed``.
        epoch_repeats (int): passes over the anchors per sampler epoch.
            Defaults to 1.
        round_up (bool): pad the last round of batches (True) or drop it.
            Defaults to True.
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 group_size: int = 2,
                 mode: str = 'similar',
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 epoch_repeats: int = 1,
                 round_up: bool = True) -> None:
        if not _is_int(group_size) or not 1 <= group_size <= 4:
            raise ValueError(
                'ClassGroupSampler: group_size (train_dataloader.sampler.group_size) '
                f'must be an integer in 1..4, got {group_size!r}')
        if not _is_int(batch_size) or batch_size < 1 \
                or batch_size % group_size:
            raise ValueError(
                'ClassGroupSampler: batch_size (train_dataloader.sampler.batch_size, '
                'which must equal train_dataloader.batch_size) must be a positive '
                'multiple of group_size (train_dataloader.sampler.group_size = '
                f'{group_size}), got {batch_size!r}')
        if mode not in GROUP_MODES:
            raise ValueError(
                'ClassGroupSampler: mode (train_dataloader.sampler.mode) must be one '
                f'of {GROUP_MODES}, got {mode!r}')
        if not _is_int(epoch_repeats) or epoch_repeats < 1:
            raise ValueError(
                'ClassGroupSampler: epoch_repeats (train_dataloader.sampler.'
                f'epoch_repeats) must be a positive integer, got {epoch_repeats!r}')
        rank, world_size = get_dist_info()
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.batch_size = batch_size
        self.group_size = group_size
        self.groups_per_batch = batch_size // group_size
        self.mode = mode
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch_repeats = epoch_repeats
        self.round_up = round_up
        self.epoch = 0

        if mode == 'similar':
            self.image_classes: Optional[List[Tuple[int, ...]]] = \
                image_classes(dataset)
            self._build_similar(self.image_classes)
        else:
            self.image_classes = None
            self._build_random(len(dataset))

        num_groups = epoch_repeats * len(self.anchors)
        per_round = self.groups_per_batch * world_size
        if round_up:
            self.num_batches = math.ceil(num_groups / per_round)
        else:
            self.num_batches = num_groups // per_round
            if not self.num_batches:
                raise ValueError(
                    f'ClassGroupSampler: {num_groups} group(s) per epoch fill no '
                    f'round of {world_size} batch(es) of {self.groups_per_batch} '
                    'group(s) with round_up=False: set round_up=True or a larger '
                    'epoch_repeats')

    # -- pools: for each anchor, the sets its partners come from ----------------

    def _set_pools(self, pools: List[np.ndarray], slots: List[List[Tuple[int,
                                                                         int]]],
                   anchors: np.ndarray) -> None:
        """Store the partner pools (sorted index arrays, flattened) and, per image,
        its slots ``(pool id, position of the image in the pool)``, one of which is
        drawn uniformly for each of its groups."""
        self.anchors = anchors
        sizes = np.array([len(p) for p in pools], dtype=np.int64)
        self._pool_size = sizes
        self._pool_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(
            np.int64)
        self._flat = np.concatenate(pools).astype(np.int64) if pools else \
            np.zeros(0, np.int64)
        n = len(slots)
        self._slot_count = np.array([len(s) for s in slots], dtype=np.int64)
        self._slot_start = np.concatenate(
            [[0], np.cumsum(self._slot_count)[:-1]]).astype(np.int64) if n else \
            np.zeros(0, np.int64)
        flat_slots = [s for ss in slots for s in ss]
        self._slot_pool = np.array([p for p, _ in flat_slots], dtype=np.int64)
        self._slot_apos = np.array([a for _, a in flat_slots], dtype=np.int64)

    def _build_similar(self, classes: List[Tuple[int, ...]]) -> None:
        name = type(self.dataset).__name__
        labelled = np.array([i for i, c in enumerate(classes) if c], np.int64)
        num_empty = len(classes) - len(labelled)
        if not len(labelled):
            raise ValueError(
                f"ClassGroupSampler(mode='similar'): no image of the dataset "
                f'({name}) has a foreground class in its gt_label')
        if num_empty:
            print_log(
                f'ClassGroupSampler: {num_empty} image(s) of {len(classes)} have no '
                'foreground class (gt_label all 0): they are left out of the '
                "groups (mode='similar')", logger='current', level=logging.WARNING)
        if self.group_size > 1 and len(labelled) < 2:
            raise ValueError(
                'ClassGroupSampler: groups of {} need at least 2 labelled images, '
                'the dataset ({}) has {}'.format(self.group_size, name,
                                                 len(labelled)))
        num_classes = max(max(c) for c in classes if c) + 1
        holders: List[List[int]] = [[] for _ in range(num_classes)]
        for i in labelled.tolist():
            for c in classes[i]:
                holders[c].append(i)
        pools = [np.array(h, np.int64) for h in holders] + [labelled]
        fallback = num_classes
        slots: List[List[Tuple[int, int]]] = [[] for _ in classes]
        isolated = []
        for pos, i in enumerate(labelled.tolist()):
            shared = [c for c in classes[i] if len(holders[c]) >= 2]
            if shared:
                slots[i] = [(c, int(np.searchsorted(pools[c], i))) for c in shared]
            else:
                slots[i] = [(fallback, pos)]
                isolated.append(i)
        self.isolated = isolated
        if isolated and self.group_size > 1:
            print_log(
                f'ClassGroupSampler: {len(isolated)} image(s) share no class with '
                'any other image: their partners are drawn among all labelled '
                'images', logger='current', level=logging.WARNING)
        self._set_pools(pools, slots, labelled)

    def _build_random(self, n: int) -> None:
        if n < 1 or (self.group_size > 1 and n < 2):
            raise ValueError(
                f'ClassGroupSampler: groups of {self.group_size} need at least '
                f'{min(self.group_size, 2)} image(s), the dataset has {n}')
        self.isolated = []
        self._set_pools([np.arange(n, dtype=np.int64)],
                        [[(0, i)] for i in range(n)], np.arange(n, dtype=np.int64))

    # -- the groups of an epoch -------------------------------------------------

    def _pass(self, g: torch.Generator) -> np.ndarray:
        """One pass over the anchors: an ``(num_anchors, group_size)`` array."""
        k, n = self.group_size, len(self.anchors)
        if self.shuffle:
            order = self.anchors[torch.randperm(n, generator=g).numpy()]
        else:
            order = self.anchors.copy()
        if k == 1:
            return order[:, None]
        u = torch.rand((n, k), generator=g, dtype=torch.float64).numpy()
        slot = self._slot_start[order] + np.minimum(
            np.floor(u[:, 0] * self._slot_count[order]).astype(np.int64),
            self._slot_count[order] - 1)
        pool, apos = self._slot_pool[slot], self._slot_apos[slot]
        m = self._pool_size[pool]
        short = m - 1 < k - 1
        # without replacement: the j-th partner is the r-th (uniform) position of
        # the pool that is neither the anchor nor an earlier partner
        taken = np.empty((n, k), np.int64)
        taken[:, 0] = apos
        for j in range(1, k):
            pos = np.floor(u[:, j] * np.maximum(m - j, 1)).astype(np.int64)
            for e in np.sort(taken[:, :j], axis=1).T:
                pos += e <= pos
            taken[:, j] = pos
        groups = np.empty((n, k), np.int64)
        groups[:, 0] = order
        ok = ~short
        groups[ok, 1:] = self._flat[self._pool_start[pool[ok], None] +
                                    taken[ok, 1:]]
        for r in np.flatnonzero(short).tolist():
            groups[r, 1:] = self._short_partners(int(pool[r]), int(apos[r]), g)
        return groups

    def _short_partners(self, pool: int, apos: int,
                        g: torch.Generator) -> np.ndarray:
        """Partners from a pool with fewer other images than needed: all of them,
        in random order, then uniform repeats of them."""
        start, size = self._pool_start[pool], self._pool_size[pool]
        others = np.delete(self._flat[start:start + size], apos)
        need = self.group_size - 1
        first = others[torch.randperm(len(others), generator=g).numpy()]
        extra = others[torch.randint(len(others), (need - len(others), ),
                                     generator=g).numpy()]
        return np.concatenate([first, extra])

    def epoch_groups(self) -> np.ndarray:
        """The global sequence of groups of the current epoch, before padding or
        cutting into batches: an ``(epoch_repeats * num_anchors, group_size)``
        array of dataset indices, anchors in column 0; the same on every rank and
        for every world size."""
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return np.concatenate([self._pass(g) for _ in range(self.epoch_repeats)])

    def __iter__(self) -> Iterator[int]:
        groups = self.epoch_groups()
        per_batch, world = self.groups_per_batch, self.world_size
        total = self.num_batches * world * per_batch
        groups = groups[np.arange(total) % len(groups)]  # pad (or drop) the end
        mine = groups.reshape(self.num_batches, world, per_batch,
                              self.group_size)[:, self.rank]
        return iter(mine.reshape(-1).tolist())

    def __len__(self) -> int:
        """The number of indices of this rank per epoch (whole batches)."""
        return self.num_batches * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: each epoch has its own groups (and, with
        ``shuffle=True``, its own anchor order)."""
        self.epoch = epoch


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)
