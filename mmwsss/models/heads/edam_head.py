"""The EDAM classification head (Wu et al., "Embedded Discriminative Attention
Mechanism for Weakly Supervised Semantic Segmentation", CVPR 2021;
docs/methods/edam.md)."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmwsss.models.layers.cma import CollaborativeMultiAttention
from mmwsss.models.layers.da_layer import DiscriminativeActivation
from mmwsss.registry import MODELS
from .base_cam_head import BaseCAMHead


@MODELS.register_module()
class EDAMHead(BaseCAMHead):
    """EDAM: discriminative activation masks trained through collaborative
    multi-attention over groups of images.

    Training (EDAM §3.1-3.3, Fig. 2): the DA layer
    (:class:`~mmwsss.models.layers.DiscriminativeActivation`) predicts K + 1 masks
    ``M_hat`` (Eq. 1) from the backbone feature ``F``; a bias-free 1x1 convolution
    reduces ``F`` to d channels, ``G = W_r F``, and class ``k``'s feature is
    ``X^k = G * M_hat^k`` (Eq. 2 followed by the reduction: the two commute because
    ``W_r`` is linear without bias and ``M_hat^k`` a per-pixel scalar; the
    official code reduces first, so no K x C map is built). The CMA module
    (:class:`~mmwsss.models.layers.CollaborativeMultiAttention`) runs class
    ``k``'s Transformer block over the tokens of the images of each group (the
    batch's consecutive ``group_size`` images: the
    :class:`~mmwsss.datasets.samplers.ClassGroupSampler` makes them share a class)
    and classifies each image (Eqs. 3-4). The loss is the binary cross-entropy
    over all images and classes (Eq. 3; :class:`BaseCAMHead`'s default, the
    multi-label soft margin loss, is the same mean). The background mask gets no
    loss; it acts through the normalisation only.

    Inference (§3.4): the CMA is dropped; the class maps are the foreground DA
    masks themselves (:meth:`class_maps`), which the classifier's test-time
    augmentation sums over scales and flips and max-normalises per class (the
    official ``infer_cls.py``: scales 1, 0.5, 1.5, 2 x flip, summed). The image
    scores at inference (``pred_score``; used for the classification metric and
    ``restrict='pred'``) are the CMA's logits with every image a group of its
    own (EDAM Table 6, "single image"), computed for the one test-time pass
    whose scores the classifier keeps (:meth:`predict_class_maps` skips the CMA
    in the others); they never enter the maps.

    Outputs of :meth:`forward`: ``dict(masks=M_hat (N, K + 1, h, w), logits=(N,
    K))``; the training-step record (:meth:`train_step_extras`) adds the
    background mask as ``da_background``.

    Args:
        in_channels (int): channels of ``F`` (ResNet-38d: 4096).
        embed_dims (int): d of the reduction and the CMA (official code: 128).
        group_size (int): images per group in training, B (paper: 2).
        da_cfg (dict, optional): further :class:`DiscriminativeActivation`
            arguments (``kernel_size=3``, ``background_index=0``,
            ``normalize=True``).
        cma_cfg (dict, optional): further :class:`CollaborativeMultiAttention`
            arguments (``num_heads=2``, ``ffn_channels=512``, ``num_layers=1``,
            ``dropout=0.1``, ``num_segments=5``, ``layer_norm='bert'``, ...).
        **kwargs: :class:`BaseCAMHead` arguments (``num_classes``,
            ``loss_weight``, ``in_index``, ``init_cfg``).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int = 128,
                 group_size: int = 2,
                 da_cfg: Optional[dict] = None,
                 cma_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if int(group_size) < 1:
            raise ValueError(f'group_size must be >= 1, got {group_size}')
        self.in_channels = int(in_channels)
        self.embed_dims = int(embed_dims)
        self.group_size = int(group_size)
        self.da = DiscriminativeActivation(in_channels, self.num_classes,
                                           **dict(da_cfg or {}))
        self.reduce = nn.Conv2d(in_channels, embed_dims, 1, bias=False)
        self.cma = CollaborativeMultiAttention(self.num_classes, embed_dims,
                                               **dict(cma_cfg or {}))
        nn.init.xavier_uniform_(self.reduce.weight)

    def init_weights(self) -> None:
        """The official initialisation (Xavier-uniform, see the layers) unless an
        ``init_cfg`` is given."""
        if self.init_cfg:
            super().init_weights()

    def class_features(self, feats: torch.Tensor,
                       masks: torch.Tensor) -> torch.Tensor:
        """``X^k = (W_r F) * M_hat^k``: (N, K, d, h, w)."""
        reduced = self.reduce(feats)
        return reduced[:, None] * self.da.foreground(masks)[:, :, None]

    def forward(self, feats, group_size: Optional[int] = None
                ) -> Dict[str, torch.Tensor]:
        """``dict(masks, logits)``; the logits come from groups of ``group_size``
        consecutive images (default: :attr:`group_size` in training mode, 1 in
        eval mode)."""
        x = self._select(feats)
        if group_size is None:
            group_size = self.group_size if self.training else 1
        masks = self.da(x)
        logits = self.cma(self.class_features(x, masks), group_size)
        return dict(masks=masks, logits=logits)

    def class_maps(self, outputs) -> torch.Tensor:
        """(N, K, h, w) foreground DA masks (non-negative, Eq. 1)."""
        return self.da.foreground(outputs['masks'])

    def image_logits(self, outputs) -> torch.Tensor:
        """(N, K) CMA logits (Eq. 3)."""
        return outputs['logits']

    def train_step_extras(self, outputs) -> Dict[str, torch.Tensor]:
        return dict(da_background=self.da.background(outputs['masks']))

    def predict_maps(self, feats, data_samples: Optional[Sequence] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(foreground DA masks, single-image CMA logits); the maps do not depend
        on the CMA."""
        outputs = self.forward(feats, group_size=1)
        return self.class_maps(outputs), self.image_logits(outputs)

    def predict_class_maps(self, feats, data_samples: Optional[Sequence] = None
                           ) -> torch.Tensor:
        """The foreground DA masks alone (no CMA)."""
        return self.da.foreground(self.da(self._select(feats)))
