"""Hybrid pooling (HP) of VWL (Ru et al., "Weakly supervised semantic
segmentation by visual words learning and hybrid pooling", IJCV 2023, §3.4,
Eqs. 8-10)."""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.registry import MODELS


def _check_args(gamma: float, split_sizes: Sequence[int],
                bin_mode: str) -> tuple:
    sizes = tuple(int(r) for r in split_sizes)
    if any(r < 1 for r in sizes) or len(set(sizes)) != len(sizes):
        raise ValueError('hybrid pooling: split_sizes must be distinct '
                         f'positive integers, got {tuple(split_sizes)!r}')
    if float(gamma) < 0:
        raise ValueError(f'hybrid pooling: gamma must be >= 0, got {gamma!r}')
    if float(gamma) + len(sizes) <= 0:
        raise ValueError('hybrid pooling: gamma = 0 needs at least one split '
                         'size')
    if bin_mode not in ('adaptive', 'kernel'):
        raise ValueError("hybrid pooling: bin_mode must be 'adaptive' or "
                         f"'kernel', got {bin_mode!r}")
    return sizes


def local_max_pooling(x: torch.Tensor, split_size: int,
                      bin_mode: str = 'adaptive') -> torch.Tensor:
    """``f_max_r = 1/r^2 sum_{i,j} F_max[i, j]`` (Ru et al., IJCV 2023, Eq. 8):
    the max over each bin of an r x r grid, averaged over the bins.

    Args:
        x (Tensor): (N, C, h, w).
        split_size (int): r (``r = 1`` is global max pooling).
        bin_mode (str): ``'adaptive'``: r x r bins of size about h/r x w/r
            (``adaptive_max_pool2d``; exact for any h, w); ``'kernel'``: the
            official code's ``max_pool2d`` with kernel = stride =
            (h // r, w // r), which gives more than r bins per side or drops the
            last rows / columns when h or w is not a multiple of r. The two agree
            when h and w are multiples of r.

    Returns:
        Tensor: (N, C).
    """
    if bin_mode == 'adaptive':
        pooled = F.adaptive_max_pool2d(x, split_size)
    else:
        h, w = x.shape[-2:]
        kh, kw = h // split_size, w // split_size
        if kh < 1 or kw < 1:
            raise ValueError(f"hybrid pooling (bin_mode='kernel'): a {h}x{w} "
                             f'map cannot be split into {split_size}x'
                             f'{split_size} bins')
        pooled = F.max_pool2d(x, kernel_size=(kh, kw), stride=(kh, kw))
    return pooled.mean(dim=(2, 3))


def hybrid_pooling(x: torch.Tensor,
                   gamma: float = 2.0,
                   split_sizes: Sequence[int] = (1, 2, 4),
                   bin_mode: str = 'adaptive') -> torch.Tensor:
    """Hybrid pooling (Ru et al., IJCV 2023, Eqs. 8-10):

    ``f_hp = (sum_{r in R} f_max_r + gamma f_gap) / (gamma + |R|)``,

    with ``f_max_r`` the local max pooling of Eq. 8 (:func:`local_max_pooling`)
    and ``f_gap`` the global average (Eq. 9). The paper writes Eq. 10 for
    ``R = {1, 2, 4}`` with the denominator ``gamma + 3``; other split sets (its
    Table 7 ablation) use ``gamma + |R|``, as the official code does. When h and w
    are multiples of every r, ``GAP <= HP <= GMP`` element-wise; ``gamma -> inf``
    gives GAP, ``gamma = 0`` with ``R = {1}`` gives GMP.

    Args:
        x (Tensor): (N, C, h, w); pooled channel-wise.
        gamma (float): the weight of GAP, >= 0 (paper: 2).
        split_sizes (Sequence[int]): the split set R (paper: (1, 2, 4)).
        bin_mode (str): ``'adaptive'`` (default) or ``'kernel'`` (official code),
            see :func:`local_max_pooling`.

    Returns:
        Tensor: (N, C).
    """
    sizes = _check_args(gamma, split_sizes, bin_mode)
    if x.dim() != 4:
        raise ValueError(f'hybrid pooling: input must be (N, C, h, w), got '
                         f'shape {tuple(x.shape)}')
    out = float(gamma) * x.mean(dim=(2, 3))
    for r in sizes:
        out = out + local_max_pooling(x, r, bin_mode)
    return out / (float(gamma) + len(sizes))


@MODELS.register_module()
class HybridPooling(nn.Module):
    """Hybrid pooling (HP) of VWL (Ru et al., IJCV 2023, §3.4, Eqs. 8-10), see
    :func:`hybrid_pooling`: (N, C, h, w) -> (N, C).

    It pools every channel independently, so it takes features or score maps
    alike. In the paper (and the official code) HP pools the **features** ``F``
    and the image classifier is applied to the pooled vector,
    ``p_img = conv(f_hp, W_img)`` (§3.5); because of the max terms this is not
    the HP of the class score map ``conv(F, W_img)`` (the two agree for GAP
    only). VWL uses HP for the image-label branch only; the word classifier
    pools with GAP (Table 9), and the CAMs use neither.

    Args:
        gamma (float): the weight of GAP, >= 0 (paper: 2; 0 is the "HP w/o GAP"
            ablation, Fig. 13).
        split_sizes (Sequence[int]): the split set R (paper: (1, 2, 4)).
        bin_mode (str): ``'adaptive'`` (``adaptive_max_pool2d``: the paper's
            h/r x w/r bins for any map size, default) or ``'kernel'`` (the
            official code's ``max_pool2d`` with kernel (h // r, w // r)); they
            agree when h and w are multiples of every r (a 512 crop at output
            stride 16: 32 x 32).
    """

    def __init__(self,
                 gamma: float = 2.0,
                 split_sizes: Sequence[int] = (1, 2, 4),
                 bin_mode: str = 'adaptive'):
        super().__init__()
        self.split_sizes = _check_args(gamma, split_sizes, bin_mode)
        self.gamma = float(gamma)
        self.bin_mode = bin_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) hybrid pooling of (N, C, h, w) ``x``."""
        return hybrid_pooling(x, self.gamma, self.split_sizes, self.bin_mode)

    def extra_repr(self) -> str:
        return (f'gamma={self.gamma}, split_sizes={self.split_sizes}, '
                f'bin_mode={self.bin_mode!r}')
