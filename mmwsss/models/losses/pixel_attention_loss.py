"""GAIN^p_ext's attention loss on pixel-labelled images (Li et al., "Tell Me Where
to Look: Guided Attention Inference Network", CVPR 2018 / TPAMI 2020, §3.2,
Eq. 7)."""
from typing import Optional

import torch
import torch.nn as nn

from mmwsss.registry import MODELS
from .utils import check_pair_maps, masked_pixel_mean, mean_per_image


def pixel_attention_loss(maps: torch.Tensor,
                         targets: torch.Tensor,
                         images: torch.Tensor,
                         valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``L_e = 1/n sum_c (A^c - H^c)^2`` (Eq. 7).

    Per (image, class) pair the squared error between the attention ``A^c`` (the
    normalised map in [0, 1]) and the binary mask ``H^c`` of the class, **averaged
    over the valid pixels** (the paper does not give the pixel reduction; a pixel
    sum weighted by 10 would swamp the classification loss), then ``1/n`` over the
    image's pairs and the mean over the images. A pair without valid pixels (all
    ignored) is left out.

    Args:
        maps (Tensor): (P, H, W) attention of each pair.
        targets (Tensor): (P, H, W) binary mask ``H^c`` of each pair.
        images (Tensor): (P,) image index of each pair.
        valid (Tensor, optional): (P, H, W) bool, the pixels that count (not
            ignored (label 255), inside the unpadded image).

    Returns:
        Tensor: the scalar loss; 0 when no pair has a valid pixel.
    """
    check_pair_maps('pixel_attention_loss', maps, targets, images=images)
    if valid is None:
        valid = torch.ones_like(maps, dtype=torch.bool)
    check_pair_maps('pixel_attention_loss', maps, valid, images=images)
    x = maps.float()
    sq = (x - targets.to(x)).pow(2)
    per_pair = masked_pixel_mean(sq, valid)
    keep = valid.flatten(1).any(1)
    return mean_per_image(per_pair, images.to(x.device), keep)


@MODELS.register_module()
class PixelAttentionLoss(nn.Module):
    """GAIN^p_ext's attention loss ``L_e`` (Eq. 7), see
    :func:`pixel_attention_loss`.

    Args:
        loss_weight (float): multiplies the loss (GAIN's omega = 10 of Eq. 8 is the
            head's ``ext_weight``; keep this at 1 there).
        loss_name (str): key of the loss in the losses dict.
    """

    def __init__(self, loss_weight: float = 1.0,
                 loss_name: str = 'loss_ext_pixel'):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, maps: torch.Tensor, targets: torch.Tensor,
                images: torch.Tensor,
                valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Args: maps, targets (P, H, W), images (P,), valid (P, H, W) bool."""
        return self.loss_weight * pixel_attention_loss(
            maps, targets, images, valid=valid)

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, loss_name={self.loss_name!r}'
