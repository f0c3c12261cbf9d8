"""DeepLab-v2 ResNet backbone (caffe-style ResNet-101, output stride 8, frozen BN)."""
from typing import List, Optional, Sequence, Union

import torch.nn as nn
from mmseg.models.backbones.resnet import ResNet

from mmwsss.registry import MODELS
from .pretrained_mixin import ConvertedPretrainedMixin
from .resnet_weights import (check_resnet_state_dict,
                             convert_deeplab_resnet_state_dict)


@MODELS.register_module()
class DeepLabResNet(ConvertedPretrainedMixin, ResNet):
    """The ResNet-101 of DeepLab-v2: caffe-style, dilated to output stride 8, frozen BN.

    Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets,
    Atrous Convolution, and Fully Connected CRFs", TPAMI 2018, §4 (ResNet-101 of He
    et al. with the MSRA ImageNet weights, res4/res5 strides removed and dilated by
    2/4); PyTorch port kazuto1011/deeplab-pytorch ``libs/models/deeplabv2.py``, the
    DeepLab-v2 code the official OAA and EDAM code use and the segmentation network of
    OAA (Jiang et al., TPAMI 2022, Tab. 12) and VWL (Ru et al., IJCV 2022, §4.1
    "Segmentation Network"). This is mmseg's
    :class:`~mmseg.models.backbones.ResNet` with DeepLab-v2 defaults:

    * **caffe style** (MSRA ResNet): the stride of a downsampling block sits in its
      first 1×1 conv (``layer2[0].conv1.stride == (2, 2)``, kazuto1011 ``reduce``),
      not in the 3×3 conv as in torchvision / pytorch style;
    * a single 7×7 stride-2 stem conv (``deep_stem=False``) + 3×3 stride-2 max pool;
    * ``strides=(1, 2, 1, 1)``, ``dilations=(1, 1, 2, 4)``: output stride 8, and
      ``contract_dilation=False``, so *every* block of ``layer3`` / ``layer4``
      (kazuto1011 ``layer4`` / ``layer5``) uses dilation 2 / 4, the first one
      included, as in DeepLab;
    * frozen BatchNorm: ``norm_cfg=dict(type='BN', requires_grad=False)`` and
      ``norm_eval=True`` keep the affine parameters fixed and the running
      statistics in eval mode during training (kazuto1011 ``freeze_bn``, DeepLab's
      ``lr_mult: 0`` / ``use_global_stats``);
    * ``out_indices=(3, )``: the 2048-channel ``layer4`` feature (H/8) for the
      ASPP head :class:`~mmwsss.models.decode_heads.DeepLabV2Head`.

    Differences from mmseg's ``ResNetV1c`` (the backbone of mmseg's own DeepLab
    configs): V1c has a deep stem (three 3×3 convs, ``stem.*`` keys) and pytorch
    style, and its ImageNet weights are ``open-mmlab://resnet101_v1c``; for that
    variant use ``type='ResNetV1c'`` with ``init_cfg=dict(type='Pretrained',
    checkpoint='open-mmlab://resnet101_v1c')``, not this class. This class loads
    the DeepLab (Caffe/MSRA-converted) weights of kazuto1011 / rulixiang, and
    torchvision-named files, through :func:`convert_deeplab_resnet_state_dict`.

    Stem max-pool rounding: Caffe's pooling rounds up, and the PyTorch ports
    (kazuto1011 ``_Stem``, rulixiang ``Stem``) use ``MaxPool2d(3, 2, padding=1,
    ceil_mode=True)`` (kazuto1011 notes that this pool differs from both the MSRA
    and the FAIR ResNet's); mmseg uses ``MaxPool2d(3, 2, padding=1)`` (floor).
    After the 7×7/2 conv an H-row input has n = ⌊(H-1)/2⌋+1 rows; the two pools
    agree when n is odd, i.e. for H ≡ 1 or 2 (mod 4) — in particular for DeepLab's
    321 (→ 161 → 81 → output 41) and 513 (→ 257 → 129 → output 65) crops and for
    65 (→ 33 → 17 → 9). Otherwise ceil mode gives one more row after the pool
    (e.g. 224 → 112 → 57 vs 56, output 29 vs 28; 500 → 250 → 126 vs 125, output
    63 for both). ``stem_pool_ceil_mode=True`` reproduces the ports' sizes for
    every input.

    Args:
        depth (int): 50, 101 or 152 (also 18/34 with BasicBlocks). Default: 101.
        strides (Sequence[int]): stride of the first block of each stage.
            Default: ``(1, 2, 1, 1)``.
        dilations (Sequence[int]): dilation of each stage. Default: ``(1, 1, 2, 4)``.
        out_indices (Sequence[int] | int): stages returned. Default: ``(3, )``.
        style (str): ``'caffe'`` or ``'pytorch'``. Default: ``'caffe'``.
        deep_stem (bool): three 3×3 stem convs (ResNetV1c). Default: False.
        contract_dilation (bool): halve the first block's dilation in dilated
            stages (mmseg's DeepLab-v3 option). Default: False.
        norm_cfg (dict, optional): None = ``dict(type='BN', requires_grad=False)``.
        norm_eval (bool): BN layers stay in eval mode in ``train()``.
            Default: True.
        stem_pool_ceil_mode (bool): ceil-mode stem max pool as kazuto1011 (see
            above). Default: False.
        init_cfg (dict | list[dict], optional): MMEngine init config. Without it,
            mmseg's ResNet init (Kaiming convs, BN 1/0, last BN of each block 0).
            ``dict(type='Pretrained', checkpoint=PATH, prefix=None)`` loads a
            kazuto1011 / rulixiang / torchvision / mmseg ResNet checkpoint, strictly
            (every key of this backbone, shapes checked); with ``prefix`` (e.g.
            ``'backbone.'``) only keys under it are used, prefix removed.
        **kwargs: the other :class:`~mmseg.models.backbones.ResNet` arguments
            (``in_channels``, ``stem_channels``, ``base_channels``, ``num_stages``,
            ``frozen_stages``, ``avg_down``, ``conv_cfg``, ``with_cp``,
            ``multi_grid``, ``zero_init_residual``, ``pretrained``, ...).

    Attributes:
        stage_channels (tuple[int]): output channels of the stages.
        out_channels (tuple[int]): channels of the returned outputs.
    """

    def __init__(self,
                 depth: int = 101,
                 strides: Sequence[int] = (1, 2, 1, 1),
                 dilations: Sequence[int] = (1, 1, 2, 4),
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 style: str = 'caffe',
                 deep_stem: bool = False,
                 contract_dilation: bool = False,
                 norm_cfg: Optional[dict] = None,
                 norm_eval: bool = True,
                 stem_pool_ceil_mode: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs):
        if style not in ('caffe', 'pytorch'):
            raise ValueError(f"DeepLabResNet: style must be 'caffe' or "
                             f"'pytorch', got {style!r}")
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(int(i) for i in out_indices)
        if norm_cfg is None:
            norm_cfg = dict(type='BN', requires_grad=False)
        super().__init__(
            depth=depth,
            strides=tuple(strides),
            dilations=tuple(dilations),
            out_indices=out_indices,
            style=style,
            deep_stem=deep_stem,
            contract_dilation=contract_dilation,
            norm_cfg=norm_cfg,
            norm_eval=norm_eval,
            init_cfg=init_cfg,
            **kwargs)
        self.stem_pool_ceil_mode = bool(stem_pool_ceil_mode)
        if self.stem_pool_ceil_mode:
            self.maxpool = nn.MaxPool2d(
                kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.stage_channels = tuple(
            self.base_channels * 2**i * self.block.expansion
            for i in range(len(self.stage_blocks)))
        self.out_channels = tuple(self.stage_channels[i]
                                  for i in self.out_indices)

    # ------------------------------------------------------------------ init
    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None) -> None:
        """Load a kazuto1011 / rulixiang / torchvision / mmseg ResNet checkpoint.

        Args:
            checkpoint (str): local path (or anything MMEngine's
                ``CheckpointLoader`` reads offline).
            prefix (str, optional): use only keys starting with it, prefix removed.

        Raises:
            ResNetStateDictError: (a ``KeyError``) unknown key names, or keys that
                do not match this backbone (e.g. a ResNet-50 file for depth 101:
                the missing blocks are named).
            ValueError: only tensor shapes differ.
        """
        name = f'DeepLabResNet(depth={self.depth}, deep_stem={self.deep_stem})'

        def convert(state):
            converted = convert_deeplab_resnet_state_dict(state)
            check_resnet_state_dict(converted, self.state_dict(), name)
            return converted

        self._load_converted(checkpoint, prefix, convert,
                             f'DeepLabResNet(depth={self.depth})')

    # --------------------------------------------------------------- train
    def train(self, mode: bool = True) -> 'DeepLabResNet':
        """Train mode with frozen stages / BN kept in eval (``norm_eval``)."""
        super().train(mode)
        return self
