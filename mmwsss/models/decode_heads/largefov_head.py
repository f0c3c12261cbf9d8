"""DeepLab-v1 LargeFOV decode head (pool5a → fc6 → fc7 → fc8)."""
import copy
from typing import List, Optional, Sequence, Union

import torch.nn as nn
from mmcv.cnn import (build_activation_layer, build_conv_layer,
                      build_norm_layer)
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmwsss.registry import MODELS

# Activations that take no ``inplace`` argument (as in mmcv's ``ConvModule``).
_NO_INPLACE = ('Tanh', 'PReLU', 'Sigmoid', 'HSigmoid', 'Swish', 'GELU')


@MODELS.register_module()
class LargeFOVHead(BaseDecodeHead):
    """DeepLab-LargeFOV classifier: ``pool5a → fc6 → fc7 → fc8``.

    The head of DeepLab-v1 LargeFOV (Chen et al., "Semantic Image Segmentation with
    Deep Convolutional Nets and Fully Connected CRFs", ICLR 2015, §4 "DeepLab-
    LargeFOV"; Caffe ``train.prototxt`` of DeepLab-LargeFOV; PyTorch port
    rulixiang/deeplab-pytorch ``models/DeepLabV1_LargeFOV.py``), the segmentation
    network of OAA (Jiang et al., TPAMI 2022, §4.1, Tab. 1). Paired with
    :class:`~mmwsss.models.backbones.DeepLabVGG16` ``(variant='largefov')``
    (512 channels at output stride 8)::

        pool5a  AvgPool 3x3, stride 1, pad 1            (optional, ``avg_pool``)
        fc6     Conv 3x3, dilation 12, pad 12 → channels (1024)  [+ norm] + ReLU
        drop6   Dropout2d(dropout_ratio = 0.5)
        fc7     Conv 1x1 → channels (1024)                        [+ norm] + ReLU
        drop7   Dropout2d(dropout_ratio = 0.5)   = BaseDecodeHead ``self.dropout``
        fc8     Conv 1x1 → num_classes                = BaseDecodeHead ``conv_seg``

    ``drop7`` + ``fc8`` are :meth:`BaseDecodeHead.cls_seg` unchanged: the
    dropout that :class:`BaseDecodeHead` puts before ``conv_seg`` *is* DeepLab's
    drop7 (``dropout_ratio`` therefore sets both drop6 and drop7), and ``conv_seg``
    is fc8. Output stride is that of the input feature (8 with the LargeFOV
    VGG-16), so ``forward`` returns ``(N, num_classes, h, w)`` logits at the
    feature resolution; :meth:`loss_by_feat` / :meth:`predict_by_feat` of
    :class:`BaseDecodeHead` upsample them bilinearly (DeepLab instead downsamples
    the labels ×8 for the loss; the mmseg convention is kept).

    Notes on fidelity:

    * ``pool5a`` uses ``count_include_pad=True`` (PyTorch default): for a 3×3/1/1
      window Caffe's AVE pooling also always divides by 9.
    * Dropout is channel-wise ``nn.Dropout2d`` as in the PyTorch ports (rulixiang,
      wangleihitcs) and mmseg; Caffe's ``Dropout`` layer is element-wise.
    * No normalisation by default (``norm_cfg=None``, convs have biases). With a
      ``norm_cfg`` fc6/fc7 get a norm layer (``norm6``/``norm7``) and no bias.
    * The ResNet-101 "DeepLab-LargeFOV" of DeepLab-v2 (TPAMI 2018, Tab. 3) is a
      single 3×3 rate-12 conv straight to the classes, not this head: use
      ``DeepLabV2Head(dilations=(12, ))``.

    Initialisation (done at construction, so the head is usable without
    ``init_weights``): fc6/fc7 Kaiming normal (``fan_out``, ReLU), bias 0 — the
    from-scratch init of rulixiang/deeplab-pytorch (DeepLab's Caffe release instead
    initialises fc6/fc7 from the ImageNet VGG-16 fc6/fc7, subsampled to 3×3×1024;
    load such weights with a ``Pretrained`` init_cfg / ``load_from``); fc8
    (``conv_seg``) N(0, ``init_std`` = 0.01), bias 0 (DeepLab prototxt, mmseg
    default). Norm layers: weight 1, bias 0. An explicit ``init_cfg`` is applied on
    top by :meth:`init_weights` (MMEngine).

    Parameter names (for lr multipliers; DeepLab: fc8 is the only new layer, lr ×10
    weight / ×20 bias, fc6/fc7 ×1/×2): ``fc6.weight``, ``fc6.bias``,
    ``fc7.weight``, ``fc7.bias`` (``norm6.*``/``norm7.*`` with a norm), and
    ``conv_seg.weight``, ``conv_seg.bias`` (fc8); prefixed ``decode_head.`` in an
    ``EncoderDecoder``. rulixiang's ``conv6/conv7/conv8`` (and wangleihitcs's
    ``features.32/35/38``) map to ``fc6/fc7/conv_seg``.

    Args:
        in_channels (int | Sequence[int]): input channels (512 for the LargeFOV
            VGG-16). A sequence needs ``input_transform='resize_concat'``.
        channels (int): channels of fc6 and fc7. Default: 1024.
        num_classes (int): number of classes (fc8 outputs).
        dilation (int): dilation (= padding) of the 3×3 fc6. Default: 12.
        avg_pool (bool): apply the ``pool5a`` 3×3/1/1 average pool before fc6.
            Default: True.
        dropout_ratio (float): p of drop6 and drop7 (0 disables both).
            Default: 0.5.
        init_std (float): std of the normal init of fc8. Default: 0.01.
        init_cfg (dict | list[dict], optional): MMEngine init config applied by
            ``init_weights`` on top of the construction-time init. Default: None.
        **kwargs: the other :class:`BaseDecodeHead` arguments (``norm_cfg``,
            ``conv_cfg``, ``act_cfg``, ``in_index``, ``input_transform``,
            ``loss_decode``, ``ignore_index``, ``align_corners``, ...).
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 channels: int = 1024,
                 *,
                 num_classes: int,
                 dilation: int = 12,
                 avg_pool: bool = True,
                 dropout_ratio: float = 0.5,
                 init_std: float = 0.01,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs):
        super().__init__(
            in_channels,
            channels,
            num_classes=num_classes,
            dropout_ratio=dropout_ratio,
            init_cfg=init_cfg,
            **kwargs)
        if not isinstance(self.in_channels, int):
            raise ValueError(
                'LargeFOVHead needs a single input feature map: use '
                "input_transform=None or 'resize_concat', got "
                f'{self.input_transform!r}')
        if int(dilation) < 1:
            raise ValueError(f'LargeFOVHead: dilation must be >= 1, got '
                             f'{dilation}')
        self.dilation = int(dilation)
        self.avg_pool = bool(avg_pool)
        self.init_std = float(init_std)

        self.pool5a = (
            nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
            if self.avg_pool else None)
        with_norm = self.norm_cfg is not None
        self.fc6 = build_conv_layer(
            self.conv_cfg,
            self.in_channels,
            channels,
            kernel_size=3,
            padding=self.dilation,
            dilation=self.dilation,
            bias=not with_norm)
        self.norm6 = (build_norm_layer(self.norm_cfg, channels)[1]
                      if with_norm else None)
        self.relu6 = self._build_act()
        self.drop6 = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None
        self.fc7 = build_conv_layer(
            self.conv_cfg, channels, channels, kernel_size=1, bias=not with_norm)
        self.norm7 = (build_norm_layer(self.norm_cfg, channels)[1]
                      if with_norm else None)
        self.relu7 = self._build_act()
        # drop7 = self.dropout and fc8 = self.conv_seg (BaseDecodeHead).
        self._default_init()

    def _build_act(self) -> nn.Module:
        if self.act_cfg is None:
            return nn.Identity()
        act_cfg = copy.deepcopy(self.act_cfg)
        if act_cfg['type'] not in _NO_INPLACE:
            act_cfg.setdefault('inplace', True)
        return build_activation_layer(act_cfg)

    def _default_init(self) -> None:
        for conv in (self.fc6, self.fc7):
            nn.init.kaiming_normal_(
                conv.weight, mode='fan_out', nonlinearity='relu')
            if conv.bias is not None:
                nn.init.constant_(conv.bias, 0)
        for norm in (self.norm6, self.norm7):
            if norm is not None and getattr(norm, 'weight', None) is not None:
                nn.init.constant_(norm.weight, 1)
                nn.init.constant_(norm.bias, 0)
        nn.init.normal_(self.conv_seg.weight, mean=0, std=self.init_std)
        nn.init.constant_(self.conv_seg.bias, 0)

    @property
    def drop7(self) -> Optional[nn.Module]:
        """DeepLab's drop7: BaseDecodeHead's classifier dropout."""
        return self.dropout

    def _forward_feature(self, inputs: Sequence[Tensor]) -> Tensor:
        """pool5a → fc6 → relu6 → drop6 → fc7 → relu7: the fc7 feature
        ``(N, channels, h, w)`` that :meth:`cls_seg` (drop7 + fc8) classifies."""
        x = self._transform_inputs(inputs)
        if self.pool5a is not None:
            x = self.pool5a(x)
        x = self.fc6(x)
        if self.norm6 is not None:
            x = self.norm6(x)
        x = self.relu6(x)
        if self.drop6 is not None:
            x = self.drop6(x)
        x = self.fc7(x)
        if self.norm7 is not None:
            x = self.norm7(x)
        return self.relu7(x)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Class logits ``(N, num_classes, h, w)`` at the feature resolution."""
        return self.cls_seg(self._forward_feature(inputs))
