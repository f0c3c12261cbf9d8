"""DeepLab-style VGG-16 backbone (OAA classifier, DeepLab-v1 LargeFOV, plain VGG-16)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmwsss.models.utils.module_ops import freeze_modules
from mmwsss.registry import MODELS
from .pretrained_mixin import ConvertedPretrainedMixin
from .vgg_weights import VGG16_CONV_INDICES, convert_vgg16_state_dict

# Conv channels of the five VGG-16 stages and the number of convs in each.
_STAGE_CHANNELS = (64, 128, 256, 512, 512)
_STAGE_DEPTHS = (2, 2, 3, 3, 3)

# Per variant: (kernel, stride, padding) of pool1..pool5 (None = no pool), and
# the dilation of each stage's convs.
_POOLS = {
    'plain': ((2, 2, 0), (2, 2, 0), (2, 2, 0), (2, 2, 0), (2, 2, 0)),
    'oaa': ((2, 2, 0), (2, 2, 0), (2, 2, 0), (3, 1, 1), None),
    'largefov': ((3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 1)),
}
_DILATIONS = {
    'plain': (1, 1, 1, 1, 1),
    'oaa': (1, 1, 1, 1, 2),
    'largefov': (1, 1, 1, 1, 2),
}


@MODELS.register_module()
class DeepLabVGG16(ConvertedPretrainedMixin, BaseModule):
    """VGG-16 conv1_1–conv5_3 with the DeepLab / OAA output-stride-8 changes.

    Variants (all have the 13 VGG-16 3×3 convs, each followed by ReLU, no BN):

    * ``'oaa'``: the attention (classification) network of OAA, Jiang et al.,
      "Online Attention Accumulation for Weakly Supervised Semantic Segmentation",
      TPAMI 2021, §3.1 (= ICCV 2019 "Integral Object Mining via Online Attention
      Accumulation", §3.1), layer details from the official code
      (PengtaoJiang/OAA-PyTorch ``models/vgg.py``, cfg ``'D1'``): pool1–pool3 2×2
      stride 2; **pool4 3×3 stride 1 pad 1**; conv5_x **dilation 2, pad 2**;
      **no pool5**. Output stride 8, an H×W input gives ⌊⌊⌊H/2⌋/2⌋/2⌋ =
      ⌊H/8⌋ rows (e.g. 321 → 40, 224 → 28).
    * ``'largefov'``: the VGG-16 part of DeepLab-v1 LargeFOV (Chen et al., "Semantic
      Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs",
      ICLR 2015; PyTorch ports rulixiang/deeplab-pytorch ``DeepLabV1_LargeFOV`` and
      wangleihitcs/DeepLab-V1-PyTorch): pool1–pool3 **3×3 stride 2 pad 1**; pool4
      3×3 stride 1 pad 1; conv5_x dilation 2, pad 2; **pool5 3×3 stride 1 pad 1**
      (max). Output stride 8, H → ⌊(H−1)/2⌋+1 = ⌈H/2⌉ three times = ⌈H/8⌉
      rows (321 → 41, 224 → 28). fc6 (3×3, dilation 12, 1024), fc7 (1×1, 1024),
      fc8 and the ``pool5a`` 3×3/1/1 *average* pool that precedes fc6 in
      DeepLab-LargeFOV belong to the decode head, not to this backbone. PyTorch's
      floor-mode pooling is used, as in the PyTorch ports; Caffe's ceil-mode
      pooling gives the same sizes for the odd crops DeepLab uses (321, 513) but
      differs for even sizes (Caffe: 224 → 113 → 57 → 29).
    * ``'plain'``: torchvision ``vgg16().features`` unchanged (2×2 stride-2 pool1–
      pool5), output stride 32 (321 → 10, 224 → 7). Useful as a reference. With
      ``with_last_pool=False`` the last output is relu5_3 (stride 16: 321 → 20,
      224 → 14), the layer GAIN takes its Grad-CAM attention from (Li et al.,
      "Tell Me Where to Look: Guided Attention Inference Network", CVPR 2018, §3.1:
      "the last convolutional layer"; :class:`~mmwsss.models.heads.VGGFCHead` then
      applies pool5 itself).

    Parameter names follow torchvision's ``vgg16().features`` indices, so a
    torchvision checkpoint maps one-to-one: ``features.{i}.weight/bias`` with ``i`` =
    0, 2 (conv1_1, conv1_2), 5, 7 (conv2_x), 10, 12, 14 (conv3_x), 17, 19, 21
    (conv4_x), 24, 26, 28 (conv5_x). ReLUs sit at ``i + 1`` and pools at 4, 9, 16,
    23 and (not in ``'oaa'``) 30. This is also the layout of the OAA official model
    (``features.*``), so its checkpoints load after dropping ``extra_convs.*``. See
    :func:`~mmwsss.models.backbones.convert_vgg16_state_dict` for Caffe-style names.

    Stage ``k`` (0–4) is conv{k+1}_x + ReLU **followed by** pool{k+1} when the variant
    has it (MMPretrain ``VGG`` convention), so stage strides are (2, 4, 8, 16, 32)
    for ``'plain'`` and (2, 4, 8, 8, 8) for ``'oaa'`` / ``'largefov'``; the
    ``'plain'`` stage-4 output equals ``torchvision.models.vgg16().features(x)``.

    Args:
        variant (str): ``'oaa'``, ``'largefov'`` or ``'plain'``. Default: ``'oaa'``.
        width (float): multiplier of every conv's output channels (rounded, at least
            1), e.g. 0.25 gives 16/32/64/128/128 channels for CPU toy runs. Pretrained
            weights need ``width=1.0``. Default: 1.0.
        in_channels (int): input channels. Default: 3.
        out_indices (Sequence[int] | int): stages (0–4, negative counts from the
            end) whose outputs are returned, as a tuple. Default: ``(4,)``.
        frozen_stages (int): stages ``0..frozen_stages`` get ``requires_grad=False``
            (-1: none). Default: -1.
        with_last_pool (bool): keep pool5 in stage 4 (``'plain'``, ``'largefov'``;
            ``'oaa'`` has none). False ends stage 4 at relu5_3 (MMPretrain ``VGG``'s
            argument of the same name); the parameters and their names do not
            change. Default: True.
        init_cfg (dict | list[dict], optional): MMEngine init config. Without it the
            convs keep torchvision's init (Kaiming normal, fan_out, ReLU; zero bias)
            done at construction. ``dict(type='Pretrained', checkpoint=PATH,
            prefix=None)`` loads a torchvision / Caffe-style / DeepLab VGG-16
            checkpoint (all 13 convs required, see
            :func:`convert_vgg16_state_dict`); with ``prefix`` (e.g.
            ``'backbone.'``) only keys under it are used, prefix removed.

    Attributes:
        stage_channels (tuple[int]): output channels of the 5 stages.
        stage_strides (tuple[int]): output strides of the 5 stages.
        out_channels (tuple[int]): channels of the returned outputs.
    """

    VARIANTS = tuple(_POOLS)

    def __init__(self,
                 variant: str = 'oaa',
                 width: float = 1.0,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (4, ),
                 frozen_stages: int = -1,
                 with_last_pool: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if variant not in _POOLS:
            raise ValueError(f'DeepLabVGG16: unknown variant {variant!r}, '
                             f'expected one of {self.VARIANTS}')
        if not width > 0:
            raise ValueError(f'DeepLabVGG16: width must be > 0, got {width}')
        self.variant = variant
        self.width = float(width)
        if self.width != 1.0 and self._pretrained_cfgs():
            raise ValueError(self._width_error())

        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        norm = []
        for i in out_indices:
            if not -5 <= int(i) <= 4:
                raise ValueError(f'DeepLabVGG16: out_indices must be in [-5, 4], '
                                 f'got {tuple(out_indices)}')
            norm.append(int(i) % 5)
        if not norm:
            raise ValueError('DeepLabVGG16: out_indices is empty')
        self.out_indices = tuple(norm)
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f'DeepLabVGG16: frozen_stages must be in [-1, 4], '
                             f'got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.with_last_pool = bool(with_last_pool)

        self.stage_channels = tuple(
            max(1, int(round(c * self.width))) for c in _STAGE_CHANNELS)
        layers: List[nn.Module] = []
        stage_ends: List[int] = []
        strides: List[int] = []
        stride, cin = 1, in_channels
        for stage, (cout, depth) in enumerate(
                zip(self.stage_channels, _STAGE_DEPTHS)):
            d = _DILATIONS[variant][stage]
            for _ in range(depth):
                layers.append(
                    nn.Conv2d(cin, cout, kernel_size=3, padding=d, dilation=d))
                layers.append(nn.ReLU(inplace=True))
                cin = cout
            pool = _POOLS[variant][stage]
            if stage == len(_STAGE_DEPTHS) - 1 and not self.with_last_pool:
                pool = None
            if pool is not None:
                k, s, p = pool
                layers.append(nn.MaxPool2d(kernel_size=k, stride=s, padding=p))
                stride *= s
            stage_ends.append(len(layers) - 1)
            strides.append(stride)
        self.features = nn.Sequential(*layers)
        self._stage_ends = tuple(stage_ends)
        self.stage_strides = tuple(strides)
        self.out_channels = tuple(self.stage_channels[i]
                                  for i in self.out_indices)
        assert tuple(i for i, m in enumerate(self.features)
                     if isinstance(m, nn.Conv2d)) == VGG16_CONV_INDICES

        self._default_init()
        self._freeze_stages()

    # ------------------------------------------------------------------ init
    def _default_init(self) -> None:
        """torchvision's VGG init: Kaiming normal (fan_out, ReLU), zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(
                    m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def _check_pretrained(self) -> None:
        if self.width != 1.0:
            raise ValueError(self._width_error())

    def _width_error(self) -> str:
        return (f'DeepLabVGG16: width={self.width} changes the conv channels, '
                'so a pretrained VGG-16 checkpoint (init_cfg type=Pretrained) '
                'cannot be loaded; use width=1.0 or drop the Pretrained init_cfg')

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None) -> None:
        """Load a torchvision / Caffe-style / DeepLab VGG-16 checkpoint file.

        Args:
            checkpoint (str): local path (or anything MMEngine's
                ``CheckpointLoader`` reads offline).
            prefix (str, optional): use only keys starting with it, prefix removed.
        """
        if self.width != 1.0:
            raise ValueError(self._width_error())
        self._load_converted(checkpoint, prefix, convert_vgg16_state_dict,
                             f'DeepLabVGG16({self.variant})')

    # ---------------------------------------------------------------- freeze
    def _stage_modules(self, stage: int) -> List[nn.Module]:
        start = 0 if stage == 0 else self._stage_ends[stage - 1] + 1
        return list(self.features)[start:self._stage_ends[stage] + 1]

    def _freeze_stages(self) -> None:
        for stage in range(self.frozen_stages + 1):
            freeze_modules(self._stage_modules(stage))

    def train(self, mode: bool = True) -> 'DeepLabVGG16':
        super().train(mode)
        self._freeze_stages()
        return self

    # --------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the outputs of the stages in ``out_indices`` (a tuple)."""
        outs: Dict[int, torch.Tensor] = {}
        ends = {end: stage for stage, end in enumerate(self._stage_ends)}
        last = max(self._stage_ends[i] for i in self.out_indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ends and ends[i] in self.out_indices:
                outs[ends[i]] = x
            if i == last:
                break
        return tuple(outs[i] for i in self.out_indices)
