"""The memory-bank codebook of VWL's memory-bank strategy, VWL-M (Ru et al.,
"Weakly supervised semantic segmentation by visual words learning and hybrid
pooling", IJCV 2023, §3.3 "Memory-bank strategy", Eqs. 6-7, Alg. 1)."""
from typing import Tuple

import torch
from mmengine.dist import all_reduce

from mmwsss.registry import MODELS
from .visual_word_encoder import BaseCodebook, flatten_features, word_label_counts


@MODELS.register_module()
class MemoryBankCodebook(BaseCodebook):
    """VWL-M's codebook ``C`` (K, C): a buffer (no gradient, not in the
    optimizer, saved in checkpoints) updated once per training step like online
    mini-batch k-means (Ru et al., IJCV 2023, Alg. 1):

    * Eq. 6: ``C' = D^-1 W^T F``, the mean of the features of the pixels assigned
      to each word, with ``W`` the one-hot word labels ``Y`` (Eq. 4) of the
      step's pixels and ``F`` their raw (not normalised) detached features;
    * Eq. 7: ``C_{t+1} = rho C' + (1 - rho) C_t``.

    The update is split so that data-parallel ranks agree:
    :meth:`compute_update` returns the per-word feature sums ``W^T F`` (K, C) and
    pixel counts ``n`` (K,) of the local batch, a caller all-reduces the two (sum)
    and :meth:`apply_update` applies Eqs. 6-7 to the global sums, so every rank
    holds the codebook of the whole global batch (the official code runs
    DataParallel: its update sees the whole batch). :meth:`update` does the three
    steps, with MMEngine's ``all_reduce`` (a no-op without a process group).
    Alg. 1 computes the loss with the labels of ``C_t``: encode, then update.

    Words without pixels: the paper's Eq. 7 is a matrix update of every row and
    leaves ``C'_j`` undefined for a word with ``n_j = 0``; the official code
    (rulixiang/vwe, ``v2/train_cam_mbk.py``) divides by ``n_j + 1e-4``, so
    ``C'_j = 0`` and the row decays to ``(1 - rho) C_t`` (``update_empty_words=
    True``, default: the decay changes no label, the assignment being
    scale-invariant). ``update_empty_words=False`` leaves such rows unchanged
    (mini-batch k-means). The mean itself is exact (``D^-1``, the paper) with
    ``mean_eps=0`` (default); ``mean_eps=1e-4`` is the code's ``n_j + 1e-4``.

    Initialisation: the paper initialises randomly (§4.4, Table 5: 56.9 mIoU
    against 56.6 for the "random sample initialization"), ``init='random'``
    (default, ``kaiming_normal_(a=sqrt(5))`` as the official code's first
    iteration). The official code overwrites the codebook with K random pixel
    features of the first batch right after the first update: ``init='sample'``
    with :meth:`init_from_features` called by the owner at the first step
    (before the encoding: Table 5's variant; after the first update: the code's
    order). ``init='kmeans'`` refines the samples with Lloyd iterations of the
    same assignment and mean (:func:`kmeans_codebook`).

    Args:
        num_words (int): K (paper: 256).
        channels (int): C, the feature channels (ResNet-101: 2048).
        rho (float): the momentum of Eq. 7, in [0, 1] (paper and code: 1e-3).
        init (str): ``'random'`` (default), ``'sample'`` or ``'kmeans'``.
        kmeans_iters (int): Lloyd iterations of ``init='kmeans'``.
        update_empty_words (bool): apply Eq. 7 with ``C'_j = 0`` to words
            without pixels (official code, default) or leave them unchanged.
        mean_eps (float): ``C'_j = sum_j / (n_j + mean_eps)`` for ``n_j > 0``
            (0: the exact mean of Eq. 6, default; official code: 1e-4).
    """

    def __init__(self,
                 num_words: int,
                 channels: int,
                 rho: float = 1e-3,
                 init: str = 'random',
                 kmeans_iters: int = 10,
                 update_empty_words: bool = True,
                 mean_eps: float = 0.0):
        super().__init__(num_words, channels, init=init,
                         kmeans_iters=kmeans_iters)
        if not 0.0 <= float(rho) <= 1.0:
            raise ValueError(f'MemoryBankCodebook: rho must be in [0, 1], got '
                             f'{rho!r}')
        if float(mean_eps) < 0:
            raise ValueError(f'mean_eps must be >= 0, got {mean_eps!r}')
        self.rho = float(rho)
        self.update_empty_words = bool(update_empty_words)
        self.mean_eps = float(mean_eps)
        self.register_buffer('codebook',
                             torch.empty(self.num_words, self.channels))
        self.reset_parameters()

    def compute_update(self, feats: torch.Tensor, assignments: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The local statistics of Eq. 6, without changing the codebook.

        Args:
            feats (Tensor): (N, C, h, w) or (M, C) raw features ``F`` (detached
                here).
            assignments (Tensor): (N, h, w) or (M,) word labels ``Y`` (Eq. 4,
                :class:`VisualWordEncoder` ``assignments``); negative values
                (``IGNORE_WORD``) are left out.

        Returns:
            tuple[Tensor, Tensor]: ``sums`` (K, C), ``W^T F``, and ``counts``
            (K,), ``n_j``, in the codebook's dtype and device. Sum them over
            ranks before :meth:`apply_update`.
        """
        cb = self.codebook
        flat = flatten_features(feats.detach())
        labels = assignments.reshape(-1).to(flat.device)
        if labels.shape[0] != flat.shape[0]:
            raise ValueError(f'compute_update: {flat.shape[0]} features but '
                             f'{labels.shape[0]} assignments')
        if flat.shape[1] != self.channels:
            raise ValueError(f'compute_update: features have {flat.shape[1]} '
                             f'channels, the codebook {self.channels}')
        keep = labels >= 0
        flat = flat[keep].to(device=cb.device, dtype=cb.dtype)
        labels, counts = word_label_counts(labels[keep].to(cb.device),
                                           self.num_words)
        sums = torch.zeros_like(cb).index_add_(0, labels, flat)
        return sums, counts.to(cb.dtype)

    def reconstruct(self, sums: torch.Tensor,
                    counts: torch.Tensor) -> torch.Tensor:
        """``C'`` of Eq. 6 from (global) sums and counts: the mean of each word's
        features, 0 for a word without pixels."""
        sums = sums.to(self.codebook)
        counts = counts.to(self.codebook)
        if sums.shape != self.codebook.shape or counts.shape != (
                self.num_words, ):
            raise ValueError(f'sums must be {tuple(self.codebook.shape)} and '
                             f'counts ({self.num_words},), got '
                             f'{tuple(sums.shape)}, {tuple(counts.shape)}')
        assigned = counts > 0
        denom = torch.where(assigned, counts + self.mean_eps,
                            torch.ones_like(counts))
        return torch.where(assigned[:, None], sums / denom[:, None],
                           torch.zeros_like(sums))

    @torch.no_grad()
    def apply_update(self, sums: torch.Tensor,
                     counts: torch.Tensor) -> torch.Tensor:
        """Eqs. 6-7 in place: ``C <- rho C' + (1 - rho) C`` from the (globally
        summed) ``sums`` (K, C) and ``counts`` (K,) of :meth:`compute_update`.
        Returns the codebook."""
        cb = self.codebook
        new = self.rho * self.reconstruct(sums, counts) + (1.0 - self.rho) * cb
        if not self.update_empty_words:
            new = torch.where((counts.to(cb.device) > 0)[:, None], new, cb)
        cb.copy_(new)
        return cb

    def update(self,
               feats: torch.Tensor,
               assignments: torch.Tensor,
               sync: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`compute_update`, the sum of ``sums`` and ``counts`` over the
        ranks (``sync``; MMEngine's ``all_reduce``, a no-op without a process
        group), :meth:`apply_update`. Returns the (global) sums and counts."""
        sums, counts = self.compute_update(feats, assignments)
        if sync:
            all_reduce(sums, op='sum')
            all_reduce(counts, op='sum')
        self.apply_update(sums, counts)
        return sums, counts

    def extra_repr(self) -> str:
        return (super().extra_repr() + f', rho={self.rho}, '
                f'update_empty_words={self.update_empty_words}, '
                f'mean_eps={self.mean_eps}')
