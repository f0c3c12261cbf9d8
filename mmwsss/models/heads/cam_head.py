from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmwsss.registry import MODELS


@MODELS.register_module()
class CAMHead(BaseModule):
    """Class activation map head for multi-label image classification.

    ``extra convs (3x3, ReLU) -> class-aware 1x1 conv (C channels, no ReLU) -> GAP``.
    The 1x1 conv output is the class score map ``F`` (OAA [T] §3.1); the image score is
    ``s_c = GAP(F^c)`` and the probability ``p^c = sigmoid(s_c)`` (OAA Eq. 1). The loss is
    the multi-label soft margin loss, i.e. the mean over classes of the binary
    cross-entropy on ``sigmoid(s_c)``. The attention/CAM of class ``c`` is
    ``A^c = ReLU(F^c) / max(F^c)`` (OAA Eq. 2, see :meth:`cam`).

    The head predicts *foreground* classes only (``num_classes`` = K, no background),
    which :class:`~mmwsss.engine.hooks.WSSSNumClassCheckHook` knows through
    ``num_classes_excludes_background``.

    Args:
        in_channels (int): channels of the backbone feature.
        num_classes (int): number of foreground classes K.
        num_extra_convs (int): extra 3x3 conv + ReLU layers (OAA: 3).
        extra_channels (int): channels of the extra convs (OAA: 512).
        init_std (float): std of the normal init of the new layers (OAA: 0.01).
        loss_weight (float): weight of the classification loss.
        in_index (int): which backbone output to use when it returns several.
    """
    num_classes_excludes_background = True

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 num_extra_convs: int = 0,
                 extra_channels: int = 512,
                 init_std: float = 0.01,
                 loss_weight: float = 1.0,
                 in_index: int = -1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        if init_cfg is None:
            init_cfg = dict(
                type='Normal', std=init_std, bias=0, layer='Conv2d')
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.in_index = in_index
        layers = []
        c = in_channels
        for _ in range(num_extra_convs):
            layers += [nn.Conv2d(c, extra_channels, 3, padding=1), nn.ReLU(inplace=True)]
            c = extra_channels
        self.extra_convs = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(c, num_classes, 1)

    def _select(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]):
        if isinstance(feats, (list, tuple)):
            return feats[self.in_index]
        return feats

    def forward(self, feats) -> torch.Tensor:
        """Class score map ``F`` of shape (N, K, h, w)."""
        return self.classifier(self.extra_convs(self._select(feats)))

    @staticmethod
    def pool(score_map: torch.Tensor) -> torch.Tensor:
        """Image-level scores ``s = GAP(F)``, shape (N, K)."""
        return score_map.mean(dim=(2, 3))

    @staticmethod
    def cam(score_map: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """``A = ReLU(F) / max(F)`` per image and class (OAA Eq. 2).

        An all non-positive map gives all zeros (no NaN), as the official code."""
        a = F.relu(score_map)
        return a / (a.amax(dim=(-2, -1), keepdim=True) + eps)

    def loss_by_scores(self, scores: torch.Tensor,
                       labels: torch.Tensor) -> dict:
        loss = F.multilabel_soft_margin_loss(scores, labels)
        return dict(loss_cls=self.loss_weight * loss)

    def loss(self, feats, data_samples) -> Tuple[dict, torch.Tensor]:
        """Loss and the score map (returned so that hooks can reuse the same
        forward pass, e.g. online attention accumulation)."""
        score_map = self.forward(feats)
        labels = torch.stack([ds.gt_label for ds in data_samples]).to(
            score_map.dtype)
        if labels.shape[1] != self.num_classes:
            raise ValueError(
                f'gt_label has {labels.shape[1]} classes but head.num_classes is '
                f'{self.num_classes}')
        return self.loss_by_scores(self.pool(score_map), labels), score_map
