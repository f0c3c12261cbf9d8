"""The discriminative activation (DA) layer of EDAM.

Wu et al., "Embedded Discriminative Attention Mechanism for Weakly Supervised
Semantic Segmentation", CVPR 2021, §3.2 (docs/methods/edam.md).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.registry import MODELS

#: the L2 normalisation's lower bound of the norm (``F.normalize``'s default)
DA_EPS = 1e-12


@MODELS.register_module()
class DiscriminativeActivation(nn.Module):
    """EDAM's discriminative activation layer (Eqs. 1-2).

    ``M = Conv(F)`` predicts K + 1 masks (K classes and the background) from the
    backbone feature ``F``; Eq. 1 normalises their absolute values over the
    channels at every pixel,

    ``M_hat(:, i, j) = |M(:, i, j)| / max(||M(:, i, j)||_2, 1e-12)``,

    so every pixel's mask vector has unit L2 norm and entries in [0, 1] (the paper
    calls it a distribution; it is not one: the entries do not sum to 1, and the
    thresholds of EDAM's pseudo-label rule are calibrated on this L2 form; the
    official code, allenwu97/EDAM ``network/resnet38_EDAM.py``, computes
    ``abs(F.normalize(M, dim=1))``, the same). There is no softmax or sigmoid. Eq. 2
    multiplies ``F`` by each foreground mask; the background mask is used only
    through the normalisation, where it takes mass from the foreground masks at
    background pixels ("to prevent the background region scattering over
    foreground", §3.2). It gets no loss and is not read at inference.

    The paper gives no kernel size; the official code uses a bias-free 3x3
    convolution with Xavier-uniform initialisation (the defaults here).

    Args:
        in_channels (int): channels of ``F`` (ResNet-38: 4096).
        num_classes (int): foreground classes K; the layer predicts K + 1 masks.
        kernel_size (int): kernel of the mask convolution (official code: 3).
        background_index (int): the channel of the background mask, 0 (the
            paper's Alg. 1 and MMSeg's label order: foreground class k is channel
            k + 1) or -1 (the official code's last channel: class k is channel k).
        normalize (bool): apply Eq. 1 (default). ``False`` returns ``|M|``
            unnormalised (an ablation; the background then gets no gradient).
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 kernel_size: int = 3,
                 background_index: int = 0,
                 normalize: bool = True):
        super().__init__()
        if background_index not in (0, -1):
            raise ValueError('DiscriminativeActivation: background_index must be '
                             f'0 (first channel) or -1 (last), got '
                             f'{background_index!r}')
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.background_index = background_index
        self.normalize = bool(normalize)
        self.conv = nn.Conv2d(
            in_channels, num_classes + 1, kernel_size,
            padding=kernel_size // 2, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.conv.weight)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, K + 1, h, w) masks ``M_hat`` (Eq. 1) of features (N, C, h, w)."""
        masks = self.conv(feats)
        if self.normalize:
            masks = F.normalize(masks, p=2, dim=1, eps=DA_EPS)
        return masks.abs()

    def foreground(self, masks: torch.Tensor) -> torch.Tensor:
        """(N, K, h, w) foreground masks in class order."""
        if self.background_index == 0:
            return masks[:, 1:]
        return masks[:, :-1]

    def background(self, masks: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) background mask."""
        if self.background_index == 0:
            return masks[:, :1]
        return masks[:, -1:]

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, num_classes={self.num_classes}, '
                f'background_index={self.background_index}, '
                f'normalize={self.normalize}')
