"""DeepLab-v2 ASPP decode head (sum of atrous 3x3 class-score branches)."""
import warnings
from typing import List, Optional, Sequence, Union

import torch.nn as nn
from mmcv.cnn import build_conv_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmwsss.registry import MODELS


@MODELS.register_module()
class DeepLabV2Head(BaseDecodeHead):
    """DeepLab-v2 ASPP: parallel atrous 3×3 convs to the classes, summed.

    Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets,
    Atrous Convolution, and Fully Connected CRFs", TPAMI 2018, §3.1 and Fig. 4
    (ASPP-L with ResNet-101: rates 6/12/18/24); Caffe ``fc1_voc12_c{0..3}``; PyTorch
    ports kazuto1011/deeplab-pytorch ``libs/models/deeplabv2.py`` ``_ASPPModule`` and
    rulixiang/deeplab-pytorch ``models/DeepLabV2_ResNet101.py``; the segmentation
    network of VWL (Ru et al., IJCV 2022, §4.1) and of OAA's Tab. 12 (Jiang et al.,
    TPAMI 2022); mmseg has no DeepLab-v2 head::

        logits = sum_i Conv3x3(in_channels → num_classes, dilation=r_i,
                               padding=r_i, bias=True)(x)

    Unlike mmseg's DeepLab-v3 :class:`~mmseg.models.decode_heads.ASPPHead` there is
    no image pooling branch, no BN/ReLU, no concatenation + bottleneck and no
    separate 1×1 classifier: every branch outputs class scores directly. On the
    OS-8 ResNet-101 (``ResNetV1c``/``ResNet`` with ``strides=(1, 2, 1, 1)``,
    ``dilations=(1, 1, 2, 4)``), ``in_channels`` = 2048.

    The ResNet-101 "DeepLab-LargeFOV" of DeepLab-v2 (TPAMI Tab. 3, a single 3×3
    rate-12 classifier) is ``DeepLabV2Head(dilations=(12, ))``; the VGG-16
    LargeFOV (fc6/fc7/fc8) is :class:`~mmwsss.models.decode_heads.LargeFOVHead`.

    Relation to :class:`BaseDecodeHead`: the branches replace ``conv_seg``, which
    is deleted after ``super().__init__`` so that no parameter stays without a
    gradient (DDP with ``find_unused_parameters=False``) and none is saved in
    checkpoints. :meth:`cls_seg` is overridden to ``[dropout →] sum of branches``
    and :meth:`_forward_feature` returns the selected / transformed input feature,
    so ``forward = cls_seg(_forward_feature(inputs))``; ``loss`` /
    ``loss_by_feat`` / ``predict`` / ``predict_by_feat`` are BaseDecodeHead's.
    ``channels`` has no meaning here (the branches go straight to the classes); it
    is set to the input channels and a given value is ignored with a warning.

    Initialisation (at construction, like kazuto1011, so the head is usable
    without ``init_weights``): branch weights N(0, ``init_std`` = 0.01), biases 0.
    An explicit ``init_cfg`` is applied on top by :meth:`init_weights`; it must not
    name ``conv_seg`` (e.g. mmseg's default ``override=dict(name='conv_seg')``).

    Parameter names (for lr multipliers; kazuto1011/DeepLab: the ASPP convs are the
    new layers, weight lr ×10, bias lr ×20 with no weight decay):
    ``aspp.{i}.weight``, ``aspp.{i}.bias`` for ``i`` = 0 … ``len(dilations)-1``
    (``decode_head.aspp.*`` in an ``EncoderDecoder``). kazuto1011's
    ``aspp.stages.c{i}.*`` and rulixiang's ``aspp.c{i}.*`` map to ``aspp.{i}.*``.

    Args:
        in_channels (int | Sequence[int]): input channels (2048 for ResNet-101).
            A sequence needs ``input_transform='resize_concat'``.
        num_classes (int): number of classes.
        dilations (Sequence[int]): rate (= padding) of each branch.
            Default: (6, 12, 18, 24).
        dropout_ratio (float): ``Dropout2d`` p applied to the input feature before
            the branches; DeepLab-v2 has none. Default: 0.
        init_std (float): std of the normal init of the branches. Default: 0.01.
        channels (int, optional): ignored (see above). Default: None.
        norm_cfg: must be None (DeepLab-v2's ASPP has no normalisation).
        init_cfg (dict | list[dict], optional): MMEngine init config applied by
            ``init_weights`` on top of the construction-time init. Default: None.
        **kwargs: the other :class:`BaseDecodeHead` arguments (``conv_cfg``,
            ``in_index``, ``input_transform``, ``loss_decode``, ``ignore_index``,
            ``align_corners``, ``out_channels``, ...). ``act_cfg`` is unused.
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 channels: Optional[int] = None,
                 *,
                 num_classes: int,
                 dilations: Sequence[int] = (6, 12, 18, 24),
                 dropout_ratio: float = 0.,
                 init_std: float = 0.01,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs):
        if norm_cfg is not None:
            raise ValueError(
                'DeepLabV2Head: the DeepLab-v2 ASPP branches are linear class '
                f'scores without normalisation; norm_cfg must be None, got '
                f'{norm_cfg}')
        if channels is not None:
            warnings.warn(
                f'DeepLabV2Head: channels={channels} is ignored, the ASPP '
                'branches map the input feature straight to the classes')
        if isinstance(dilations, int):
            dilations = (dilations, )
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise ValueError('DeepLabV2Head: dilations must be a non-empty '
                             f'sequence of ints >= 1, got {dilations}')
        feat_channels = (in_channels if isinstance(in_channels, int) else
                         sum(in_channels))
        super().__init__(
            in_channels,
            feat_channels,
            num_classes=num_classes,
            dropout_ratio=dropout_ratio,
            norm_cfg=None,
            init_cfg=init_cfg,
            **kwargs)
        if not isinstance(self.in_channels, int):
            raise ValueError(
                'DeepLabV2Head needs a single input feature map: use '
                "input_transform=None or 'resize_concat', got "
                f'{self.input_transform!r}')
        # The branches are the classifier: drop BaseDecodeHead's 1x1 conv_seg,
        # it would receive no gradient (DDP) and be saved in checkpoints.
        del self.conv_seg
        self.channels = self.in_channels
        self.dilations = dilations
        self.init_std = float(init_std)
        self.aspp = nn.ModuleList(
            build_conv_layer(
                self.conv_cfg,
                self.in_channels,
                self.out_channels,
                kernel_size=3,
                stride=1,
                padding=d,
                dilation=d,
                bias=True) for d in dilations)
        self._default_init()

    def _default_init(self) -> None:
        for conv in self.aspp:
            nn.init.normal_(conv.weight, mean=0, std=self.init_std)
            nn.init.constant_(conv.bias, 0)

    def _forward_feature(self, inputs: Sequence[Tensor]) -> Tensor:
        """The feature the branches classify: the selected/transformed input."""
        return self._transform_inputs(inputs)

    def cls_seg(self, feat: Tensor) -> Tensor:
        """``[dropout →]`` sum of the atrous branches: ``(N, out_channels, h, w)``."""
        if self.dropout is not None:
            feat = self.dropout(feat)
        out = self.aspp[0](feat)
        for conv in self.aspp[1:]:
            out = out + conv(feat)
        return out

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Class logits ``(N, num_classes, h, w)`` at the feature resolution."""
        return self.cls_seg(self._forward_feature(inputs))
