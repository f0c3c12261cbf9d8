"""Reductions shared by the per-(image, class) attention losses of GAIN
(Li et al., "Tell Me Where to Look: Guided Attention Inference Network", CVPR 2018,
Eqs. 5, 7, 9): a value per (image, class) pair, ``1/n`` over the ``n`` classes of an
image, then the mean over the images."""
from typing import Optional

import torch


def mean_per_image(values: torch.Tensor,
                   images: torch.Tensor,
                   keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean over images of the mean over each image's pairs.

    Args:
        values (Tensor): (P,) one value per (image, class) pair.
        images (Tensor): (P,) the image index of each pair.
        keep (Tensor, optional): (P,) bool, the pairs that count (others are
            left out of their image's mean); an image without a kept pair is
            left out of the mean over images.

    Returns:
        Tensor: a scalar; 0 (still attached to ``values``) when no pair counts,
        never NaN.
    """
    if values.dim() != 1 or images.shape != values.shape:
        raise ValueError('mean_per_image: values and images must both have '
                         f'shape (P,), got {tuple(values.shape)} and '
                         f'{tuple(images.shape)}')
    if keep is None:
        keep = torch.ones_like(values, dtype=torch.bool)
    keep = keep.to(device=values.device, dtype=torch.bool)
    if not bool(keep.any()):
        return values.sum() * 0
    _, idx = torch.unique(images.to(values.device), return_inverse=True)
    m = int(idx.max()) + 1
    w = keep.to(values.dtype)
    sums = values.new_zeros(m).index_add(0, idx, torch.where(
        keep, values, torch.zeros_like(values)))
    counts = values.new_zeros(m).index_add(0, idx, w)
    has = counts > 0
    return (sums[has] / counts[has]).mean()


def masked_pixel_mean(values: torch.Tensor,
                      valid: torch.Tensor) -> torch.Tensor:
    """(P,) mean of (P, H, W) ``values`` over each pair's ``valid`` pixels (0 for
    a pair without valid pixels)."""
    v = valid.to(device=values.device, dtype=torch.bool)
    num = torch.where(v, values, torch.zeros_like(values)).sum(dim=(-2, -1))
    den = v.sum(dim=(-2, -1)).clamp(min=1).to(values.dtype)
    return num / den


def check_pair_maps(name: str, maps: torch.Tensor, *others: torch.Tensor,
                    images: torch.Tensor) -> None:
    """(P, H, W) maps, the other maps of the same shape, (P,) image indices."""
    if maps.dim() != 3:
        raise ValueError(f'{name}: maps must be (P, H, W), got shape '
                         f'{tuple(maps.shape)}')
    for t in others:
        if tuple(t.shape) != tuple(maps.shape):
            raise ValueError(f'{name}: every map must have the shape of the '
                             f'attention {tuple(maps.shape)}, got '
                             f'{tuple(t.shape)}')
    if images.dim() != 1 or images.shape[0] != maps.shape[0]:
        raise ValueError(f'{name}: images must be (P,) = ({maps.shape[0]},), '
                         f'got {tuple(images.shape)}')
