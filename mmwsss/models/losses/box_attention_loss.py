"""GAIN^b_ext's attention loss on box-labelled images (Li et al., "Tell Me Where to
Look: Guided Attention Inference Network", TPAMI 2020, §3.3, Eq. 9)."""
from typing import Optional

import torch
import torch.nn as nn

from mmwsss.registry import MODELS
from .utils import check_pair_maps, masked_pixel_mean, mean_per_image


def box_attention_loss(maps: torch.Tensor,
                       boxes: torch.Tensor,
                       saliency: torch.Tensor,
                       images: torch.Tensor,
                       valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``L_bbox = 1/n sum_c (||(O - B^c) . (A^c - Z)||^2 + ||B^c . (A^c - S)||^2)``
    (Eq. 9): outside the boxes of class ``c`` the attention is pushed to 0 (``Z``),
    inside them to the saliency map ``S`` (the foreground prior).

    Per (image, class) pair both terms are **averaged over the valid pixels** (the
    paper writes squared norms; a pixel sum weighted by 10 would swamp the
    classification loss), then ``1/n`` over the image's pairs and the mean over the
    images. A pair without valid pixels is left out.

    Args:
        maps (Tensor): (P, H, W) attention ``A^c`` of each pair (in [0, 1]).
        boxes (Tensor): (P, H, W) ``B^c``: 1 inside any box of the pair's class.
        saliency (Tensor): (P, H, W) saliency ``S`` of the pair's image, in [0, 1].
        images (Tensor): (P,) image index of each pair.
        valid (Tensor, optional): (P, H, W) bool, the pixels that count (inside
            the unpadded image).

    Returns:
        Tensor: the scalar loss; 0 when no pair has a valid pixel.
    """
    check_pair_maps('box_attention_loss', maps, boxes, saliency, images=images)
    if valid is None:
        valid = torch.ones_like(maps, dtype=torch.bool)
    check_pair_maps('box_attention_loss', maps, valid, images=images)
    x = maps.float()
    b = boxes.to(x)
    s = saliency.to(x)
    per_pixel = ((1 - b) * x).pow(2) + (b * (x - s)).pow(2)
    per_pair = masked_pixel_mean(per_pixel, valid)
    keep = valid.flatten(1).any(1)
    return mean_per_image(per_pair, images.to(x.device), keep)


@MODELS.register_module()
class BoxAttentionLoss(nn.Module):
    """GAIN^b_ext's attention loss ``L_bbox`` (Eq. 9), see
    :func:`box_attention_loss`.

    Args:
        loss_weight (float): multiplies the loss (GAIN's omega = 10 of Eq. 10 is
            the head's ``ext_weight``; keep this at 1 there).
        loss_name (str): key of the loss in the losses dict.
    """

    def __init__(self, loss_weight: float = 1.0,
                 loss_name: str = 'loss_ext_box'):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, maps: torch.Tensor, boxes: torch.Tensor,
                saliency: torch.Tensor, images: torch.Tensor,
                valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Args: maps, boxes, saliency (P, H, W), images (P,), valid (P, H, W)."""
        return self.loss_weight * box_attention_loss(
            maps, boxes, saliency, images, valid=valid)

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, loss_name={self.loss_name!r}'
