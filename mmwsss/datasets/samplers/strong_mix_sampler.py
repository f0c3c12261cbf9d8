import logging
import math
from typing import Iterator, List, Optional, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from torch.utils.data import Sampler

from mmwsss.registry import DATA_SAMPLERS


def strong_flags(dataset: Sized) -> List[bool]:
    """Per index of ``dataset``: whether the item is in a strong subset (its data
    info has ``strong_pixel`` or ``strong_box`` set; ``strong_subsets`` of the WSSS
    datasets). An error when no item carries the flags."""
    flags, flagged = [], False
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        flagged = flagged or 'strong_pixel' in info or 'strong_box' in info
        flags.append(bool(info.get('strong_pixel')) or bool(info.get('strong_box')))
    if not flagged:
        raise ValueError(
            f'StrongMixSampler: the items of the dataset ({type(dataset).__name__}) '
            'carry no strong_pixel / strong_box flags: set '
            "train_dataloader.dataset.strong_subsets=dict(pixel='...txt', "
            "box='...txt') (docs/datasets.md, section 'Strong subsets')")
    return flags


@DATA_SAMPLERS.register_module()
class StrongMixSampler(Sampler):
    """A distributed sampler whose every batch holds ``num_strong`` strong images.

    GAIN_ext (Li et al., "Tell Me Where to Look: Guided Attention Inference Network",
    CVPR 2018, §3.2-3.3, Fig. 3) trains a third, weight-sharing stream on the few
    images with pixel masks or boxes (200 of 10,582 on VOC12-aug) next to the
    image-level streams on all images. A uniform sampler would draw such an image
    once in about fifty draws; this one puts ``num_strong`` of them into every batch
    of ``batch_size`` indices and fills the rest with the other ("weak") images.

    An epoch is one pass over the weak images: they are shuffled with
    ``seed + epoch`` (as MMEngine's ``DefaultSampler``), padded by repeating the
    start of the permutation up to a whole number of batches on every rank, and cut
    into chunks of ``batch_size - num_strong``; global batch ``b`` (rank
    ``b % world_size``, its ``b // world_size``-th batch) gets chunk ``b``. The weak
    images of the ranks are therefore disjoint, apart from the padding. The strong
    images form a second stream, a new permutation each time the strong set is used
    up (**cycled**: with 200 strong images and 4 per batch, each is seen about once
    every 50 batches, many times per epoch); a batch never holds the same strong
    image twice while the strong set has at least ``num_strong`` images (with fewer,
    repeats within a batch cannot be avoided and a warning is logged). Strong images
    are the first ``num_strong`` indices of each batch; they also take part in the
    image-level losses with their labels.

    The order depends only on ``seed``, ``epoch``, ``rank`` and ``world_size``
    (deterministic, resumable); :meth:`set_epoch` is called by MMEngine's
    ``DistSamplerSeedHook`` before each epoch.

    The sampler yields ``len(self)`` indices per rank and MMEngine's default
    batching (the ``DataLoader`` cuts consecutive indices into batches) makes the
    batches, so ``batch_size`` **must equal** ``train_dataloader.batch_size`` (the
    per-GPU batch size; :class:`~mmwsss.engine.runner.WSSSRunner` refuses a
    mismatch when it builds the loader)::

        batch_size = 8
        train_dataloader = dict(
            batch_size=batch_size,
            sampler=dict(type='StrongMixSampler', batch_size=batch_size,
                         num_strong=2, shuffle=True),
            dataset=dict(strong_subsets=dict(pixel='ImageSets/GAIN/pixel_200.txt')))

    Args:
        dataset: the training dataset; its items carry ``strong_pixel`` /
            ``strong_box`` (``strong_subsets``). Injected by the Runner.
        batch_size (int): the per-GPU batch size of the data loader.
        num_strong (int): strong images per batch, ``1 <= num_strong <
            batch_size``. Defaults to 1.
        shuffle (bool): shuffle both streams (else dataset order, the strong
            stream cycling in order). Defaults to True.
        seed (int, optional): the random seed, the same on every rank; None draws
            one and synchronises it over the ranks (as ``DefaultSampler``).
            Injected by the Runner from ``randomness.seed``.
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 num_strong: int = 1,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) \
                or batch_size < 2:
            raise ValueError(
                'StrongMixSampler: batch_size (train_dataloader.sampler.batch_size, '
                'which must equal train_dataloader.batch_size) must be an integer '
                f'>= 2 (strong and weak images in each batch), got {batch_size!r}')
        if not isinstance(num_strong, int) or isinstance(num_strong, bool) \
                or not 1 <= num_strong < batch_size:
            raise ValueError(
                'StrongMixSampler: num_strong (train_dataloader.sampler.num_strong) '
                f'must be an integer in 1..{batch_size - 1} (batch_size '
                f'{batch_size}), got {num_strong!r}')
        rank, world_size = get_dist_info()
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_strong = num_strong
        self.num_weak = batch_size - num_strong
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0

        flags = strong_flags(dataset)
        self.strong_indices = [i for i, f in enumerate(flags) if f]
        self.weak_indices = [i for i, f in enumerate(flags) if not f]
        if not self.strong_indices:
            raise ValueError(
                'StrongMixSampler: no image of the dataset is in its strong subsets '
                '(train_dataloader.dataset.strong_subsets lists none of its ids)')
        if not self.weak_indices:
            raise ValueError(
                'StrongMixSampler: every image of the dataset is in a strong subset; '
                "there is nothing to mix: use sampler=dict(type='DefaultSampler')")
        if len(self.strong_indices) < num_strong:
            print_log(
                f'StrongMixSampler: only {len(self.strong_indices)} strong image(s) '
                f'for num_strong={num_strong} per batch: batches repeat strong '
                'images', logger='current', level=logging.WARNING)
        # batches per rank: every weak image once per epoch, whole batches
        self.num_batches = math.ceil(
            len(self.weak_indices) / (self.num_weak * world_size))

    def _strong_stream(self, g: torch.Generator, total: int) -> List[int]:
        """``total`` strong indices: permutations of the strong set one after the
        other; at a permutation boundary inside a batch the new permutation's
        first ids are reordered so that the batch holds no id twice (when the
        strong set has at least ``num_strong`` ids)."""
        pool, k = self.strong_indices, self.num_strong
        out: List[int] = []
        while len(out) < total:
            if self.shuffle:
                perm = [pool[i] for i in torch.randperm(len(pool),
                                                        generator=g).tolist()]
            else:
                perm = list(pool)
            r = len(out) % k
            if r and len(pool) >= k:
                in_batch = set(out[-r:])
                fresh = [i for i in perm if i not in in_batch]
                head = fresh[:k - r]
                chosen = set(head)
                perm = head + [i for i in perm if i not in chosen]
            out.extend(perm)
        return out[:total]

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        weak = self.weak_indices
        if self.shuffle:
            weak = [weak[i] for i in torch.randperm(len(weak), generator=g).tolist()]
        total_batches = self.num_batches * self.world_size
        need = total_batches * self.num_weak
        weak = (weak * math.ceil(need / len(weak)))[:need]
        strong = self._strong_stream(g, total_batches * self.num_strong)
        k, w = self.num_strong, self.num_weak
        indices: List[int] = []
        for j in range(self.num_batches):
            b = j * self.world_size + self.rank
            indices += strong[b * k:(b + 1) * k]
            indices += weak[b * w:(b + 1) * w]
        return iter(indices)

    def __len__(self) -> int:
        """The number of indices of this rank per epoch (whole batches)."""
        return self.num_batches * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: with ``shuffle=True`` each epoch has its own order."""
        self.epoch = epoch
