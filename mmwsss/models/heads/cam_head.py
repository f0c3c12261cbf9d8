from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

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

    ``pooling`` replaces the GAP of the image score by another pooling of the
    features: ``s = W pool(x) + b`` with ``x`` = :meth:`pre_logits` and ``W, b``
    the class conv, e.g. VWL's hybrid pooling (Ru et al., IJCV 2023, Eqs. 8-10,
    ``dict(type='HybridPooling', gamma=2.0, split_sizes=(1, 2, 4))``). The class
    maps stay ``ReLU(W x + b)`` (Eq. 1 there). The pooling is applied to the
    features, as VWL does, not to the score map: with max terms the two differ
    (they agree for GAP). The outputs are then ``dict(score_map=F,
    logits=s)``.

    Args:
        in_channels (int): channels of the backbone feature.
        num_extra_convs (int): extra 3x3 conv + ReLU layers (OAA: 3).
        extra_channels (int): channels of the extra convs (OAA: 512).
        init_std (float): std of the normal init of the new layers (OAA: 0.01);
            used when ``init_cfg`` is not given.
        pooling (dict, optional): a registered module mapping (N, C, h, w)
            features to (N, C) (``HybridPooling``); None: GAP of the score map.
        classifier_bias (bool): the class conv has a bias (default True; VWL's
            classifier has none).
        **kwargs: :class:`BaseCAMHead` arguments (``num_classes``, ``loss_weight``,
            ``in_index``, ``init_cfg``).
    """

    def __init__(self,
                 in_channels: int,
                 num_extra_convs: int = 0,
                 extra_channels: int = 512,
                 init_std: float = 0.01,
                 pooling: Optional[dict] = None,
                 classifier_bias: bool = True,
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
        self.classifier = nn.Conv2d(c, self.num_classes, 1,
                                    bias=classifier_bias)
        self.pooling = MODELS.build(pooling) if pooling is not None else None

    def pre_logits(self, feats) -> torch.Tensor:
        """The input of the class-aware 1x1 conv: the output of the extra convs
        (the selected backbone feature when there are none)."""
        return self.extra_convs(self._select(feats))

    def outputs_from_pre_logits(self, x: torch.Tensor):
        """Class score map ``F`` from :meth:`pre_logits` ``x``; with a
        ``pooling``, ``dict(score_map=F, logits=W pool(x) + b)``."""
        score_map = self.classifier(x)
        if self.pooling is None:
            return score_map
        pooled = self.pooling(x)
        logits = F.conv2d(pooled[:, :, None, None], self.classifier.weight,
                          self.classifier.bias).flatten(1)
        return dict(score_map=score_map, logits=logits)

    def forward(self, feats):
        """Class score map ``F`` of shape (N, K, h, w) (with a ``pooling``,
        ``dict(score_map=F, logits=...)``)."""
        return self.outputs_from_pre_logits(self.pre_logits(feats))

    def class_maps(self, outputs) -> torch.Tensor:
        """``ReLU(F)``."""
        if isinstance(outputs, dict):
            outputs = outputs['score_map']
        return super().class_maps(outputs)

    def image_logits(self, outputs) -> torch.Tensor:
        """``GAP(F)``, or ``W pool(x) + b`` with a ``pooling``."""
        if isinstance(outputs, dict):
            return outputs['logits']
        return super().image_logits(outputs)

    def linear_classifier(self) -> Optional[nn.Conv2d]:
        """The class-aware 1x1 conv while the image logits are ``GAP(F)`` and
        ``F`` is that conv of :meth:`pre_logits`; None in a subclass that changes
        either (e.g. another pooling)."""
        cls = type(self)
        if self.pooling is not None or \
                cls.image_logits is not CAMHead.image_logits or \
                cls.forward is not CAMHead.forward or \
                cls.outputs_from_pre_logits is not \
                CAMHead.outputs_from_pre_logits:
            return None
        return self.classifier
