from typing import Optional

import torch
import torch.nn as nn

from mmwsss.registry import MODELS
from .base_cam_head import BaseCAMHead


@MODELS.register_module()
class CAMHead(BaseCAMHead):
    """Class activation map head for multi-label image classification.

    ``extra convs (3x3, ReLU) -> class-aware 1x1 conv (K channels, no ReLU)``. The 1x1
    conv output is the class score map ``F`` (OAA TPAMI §3.1, docs/methods/oaa.md);
    the image score is ``s_c = GAP(F^c)`` and the probability ``p^c = sigmoid(s_c)``
    (OAA Eq. 1); the loss is the multi-label soft margin loss; the CAM of class ``c`` is
    ``A^c = ReLU(F^c) / max(F^c)`` (OAA Eq. 2). All of that is the contract's default
    (:class:`BaseCAMHead`); this class only builds the layers.

    Args:
        in_channels (int): channels of the backbone feature.
        num_extra_convs (int): extra 3x3 conv + ReLU layers (OAA: 3).
        extra_channels (int): channels of the extra convs (OAA: 512).
        init_std (float): std of the normal init of the new layers (OAA: 0.01);
            used when ``init_cfg`` is not given.
        **kwargs: :class:`BaseCAMHead` arguments (``num_classes``, ``loss_weight``,
            ``in_index``, ``init_cfg``).
    """

    def __init__(self,
                 in_channels: int,
                 num_extra_convs: int = 0,
                 extra_channels: int = 512,
                 init_std: float = 0.01,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        if init_cfg is None:
            init_cfg = dict(type='Normal', std=init_std, bias=0, layer='Conv2d')
        super().__init__(init_cfg=init_cfg, **kwargs)
        self.in_channels = in_channels
        layers = []
        c = in_channels
        for _ in range(num_extra_convs):
            layers += [nn.Conv2d(c, extra_channels, 3, padding=1),
                       nn.ReLU(inplace=True)]
            c = extra_channels
        self.extra_convs = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(c, self.num_classes, 1)

    def pre_logits(self, feats) -> torch.Tensor:
        """The input of the class-aware 1x1 conv: the output of the extra convs
        (the selected backbone feature when there are none)."""
        return self.extra_convs(self._select(feats))

    def outputs_from_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class score map ``F`` from :meth:`pre_logits` ``x``."""
        return self.classifier(x)

    def forward(self, feats) -> torch.Tensor:
        """Class score map ``F`` of shape (N, K, h, w)."""
        return self.outputs_from_pre_logits(self.pre_logits(feats))

    def linear_classifier(self) -> Optional[nn.Conv2d]:
        """The class-aware 1x1 conv while the image logits are ``GAP(F)`` and
        ``F`` is that conv of :meth:`pre_logits`; None in a subclass that changes
        either (e.g. another pooling)."""
        cls = type(self)
        if cls.image_logits is not BaseCAMHead.image_logits or \
                cls.forward is not CAMHead.forward or \
                cls.outputs_from_pre_logits is not \
                CAMHead.outputs_from_pre_logits:
            return None
        return self.classifier
