"""ResNet-38d: the wide pre-activation ResNet-38 of PSA / SEAM / EDAM (stride 8)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmwsss.models.utils.module_ops import freeze_modules
from mmwsss.registry import MODELS
from .pretrained_mixin import ConvertedPretrainedMixin
from .resnet38_weights import (RESNET38D_BLOCKS, RESNET38D_STAGES,
                               ResNet38dBlockSpec, convert_resnet38d_state_dict)


def _norm(norm_cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(norm_cfg, channels)[1]


class ResNet38dBlock(nn.Module):
    """Pre-activation basic block: ``x + conv(relu(bn(conv(relu(bn(x))))))``.

    The shortcut is ``conv_branch1(relu(bn_branch2a(x)))`` (1×1, ``stride``) when
    the shape changes, else ``x``. The first 3×3 conv has ``stride`` and
    ``first_dilation``, the second ``dilation`` (padding = dilation).
    """

    def __init__(self, spec: ResNet38dBlockSpec, norm_cfg: dict):
        super().__init__()
        cin, mid, cout = spec.in_channels, spec.mid_channels, spec.out_channels
        fd, d = spec.first_dilation, spec.dilation
        self.same_shape = not spec.has_shortcut_conv
        self.bn_branch2a = _norm(norm_cfg, cin)
        self.conv_branch2a = nn.Conv2d(cin, mid, 3, spec.stride, padding=fd,
                                       dilation=fd, bias=False)
        self.bn_branch2b1 = _norm(norm_cfg, mid)
        self.conv_branch2b1 = nn.Conv2d(mid, cout, 3, padding=d, dilation=d,
                                        bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, spec.stride, bias=False)

    def forward(self, x: torch.Tensor,
                return_bn_relu: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        act = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(act)
        y = self.conv_branch2a(act)
        y = self.conv_branch2b1(F.relu(self.bn_branch2b1(y)))
        out = shortcut + y
        return (out, act) if return_bn_relu else out


class ResNet38dBottleneck(nn.Module):
    """Pre-activation bottleneck with dropout (``b6``, ``b7``).

    ``relu(bn_branch2a(x))`` → 1×1 (``out/4``, ``stride``) → BN-ReLU-Dropout2d →
    3×3 dilated (``out/2``) → BN-ReLU-Dropout2d → 1×1 (``out``), plus the 1×1
    shortcut ``conv_branch1`` of ``relu(bn_branch2a(x))`` (always present: the
    official ``ResBlock_bot`` always uses it).
    """

    def __init__(self, spec: ResNet38dBlockSpec, norm_cfg: dict,
                 dropout: float = 0.):
        super().__init__()
        cin, cout, d = spec.in_channels, spec.out_channels, spec.dilation
        q, h = cout // 4, cout // 2
        self.bn_branch2a = _norm(norm_cfg, cin)
        self.conv_branch2a = nn.Conv2d(cin, q, 1, spec.stride, bias=False)
        self.bn_branch2b1 = _norm(norm_cfg, q)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(q, h, 3, padding=d, dilation=d,
                                        bias=False)
        self.bn_branch2b2 = _norm(norm_cfg, h)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(h, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, spec.stride, bias=False)

    def forward(self, x: torch.Tensor,
                return_bn_relu: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        act = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(act)
        y = self.conv_branch2a(act)
        y = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(y))))
        y = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(y))))
        out = shortcut + y
        return (out, act) if return_bn_relu else out


@MODELS.register_module()
class ResNet38d(ConvertedPretrainedMixin, BaseModule):
    """ResNet-38d, the wide pre-activation ResNet-38 of PSA, SEAM and EDAM.

    Wu, Shen and van den Hengel, "Wider or Deeper: Revisiting the ResNet Model for
    Visual Recognition", Pattern Recognition 2019 (model "A1", MXNet weights
    ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``, itijyou/ademxapp
    ``util/symbol/resnet_v2.py``), dilated to output stride 8 as in Ahn and Kwak,
    "Learning Pixel-level Semantic Affinity with Image-level Supervision" (PSA),
    CVPR 2018, and used as the backbone of EDAM (Wu et al., "Embedded
    Discriminative Attention Mechanism for Weakly Supervised Semantic
    Segmentation", CVPR 2021, §4.2). The layout, the module names and the forward
    are those of the official ``network/resnet38d.py`` of jiwoon-ahn/psa and
    allenwu97/EDAM (identical except for the final ReLU), so their state dicts
    load with no missing or unexpected keys:

    * ``conv1a``: 3×3 conv, 3→64, stride 1, no BN/ReLU after it (pre-activation).
    * basic blocks (BN → ReLU → 3×3 → BN → ReLU → 3×3, plus the identity or,
      when the shape changes, a 1×1 ``conv_branch1`` of the BN-ReLU'd input):
      ``b2`` (stride 2), ``b2_1``, ``b2_2``: 128; ``b3`` (s2), ``b3_1``, ``b3_2``:
      256; ``b4`` (s2), ``b4_1`` … ``b4_5``: 512; ``b5`` (stride 1, first conv
      dilation 1, second dilation 2), ``b5_1``, ``b5_2`` (dilation 2): mid 512,
      out 1024.
    * bottlenecks (BN-ReLU → 1×1 → BN-ReLU-Dropout2d → 3×3 dilation 4 →
      BN-ReLU-Dropout2d → 1×1, plus a 1×1 shortcut): ``b6`` 1024→512→1024→2048
      (dropout 0.3), ``b7`` 2048→1024→2048→4096 (dropout 0.5).
    * ``bn7``: BatchNorm(4096). EDAM returns ``bn7(b7(x))`` (the official EDAM
      code comments PSA's ReLU out), PSA/SEAM ``relu(bn7(b7(x)))``:
      ``final_relu``.

    Output stride 8: a 64×64 input gives 8×8 (H → ⌈H/2⌉ three times, e.g.
    368 → 46, 448 → 56, 321 → 41).

    **Input**: RGB, ``/255`` then ImageNet mean (0.485, 0.456, 0.406) / std (0.229,
    0.224, 0.225), as the official ``Normalize``. This is the data preprocessor's
    job: ``mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True`` for images loaded by mmcv (BGR).

    **Stages** (for ``out_indices`` / ``frozen_stages``): 0 ``conv1a`` (64 ch,
    stride 1); 1 ``b2*`` (128, stride 2); 2 ``b3*`` (256, 4); 3 ``b4*`` (512, 8);
    4 ``b5*`` (1024, 8); 5 ``b6`` (2048, 8); 6 ``b7`` + ``bn7`` (4096, 8).
    Stage 6's output is the backbone feature (``bn7``, plus ReLU if
    ``final_relu``). The output of a stage ``i`` < 6 is its residual stream *after*
    the next block's BN-ReLU, ``relu(<next block>.bn_branch2a(x))``: this is the
    official ``get_x_bn_relu`` feature, so ``out_indices=(3, 4, 6)`` returns PSA's
    ``conv4``, ``conv5``, ``conv6`` (AffinityNet / SEAM inputs).

    **Training-time freezing** (official EDAM/PSA ``train()``): with
    ``norm_eval=True`` every BN stays in eval mode (ImageNet running statistics)
    in ``train()``; the default ``norm_cfg`` has ``requires_grad=False`` so the BN
    affine parameters are frozen too (the official code sets ``requires_grad =
    False`` on every BN weight and bias). ``frozen_stages=1`` (default) freezes the
    weights of stages 0–1, i.e. ``conv1a``, ``b2``, ``b2_1``, ``b2_2`` — the
    ``not_training`` layers of EDAM's ``resnet38_EDAM_cls.Net`` (and PSA's
    ``resnet38_cls`` / ``resnet38_aff``; the bare ``resnet38d.Net`` freezes only
    ``conv1a``: ``frozen_stages=0``). Frozen stages are also kept in eval mode.
    The Dropout2d layers of ``b6`` / ``b7`` stay active in train mode.

    Args:
        final_relu (bool): ReLU after ``bn7`` (PSA / SEAM). Default: False (EDAM).
        out_indices (Sequence[int] | int): stages 0–6 (negative counts from the
            end) returned, as a tuple in this order. Default: ``(6, )``.
        frozen_stages (int): stages ``0..frozen_stages`` get
            ``requires_grad=False`` and stay in eval mode; -1: none.
            Default: 1 (``conv1a`` and ``b2*``, as EDAM).
        norm_eval (bool): keep every BN in eval mode in ``train()``.
            Default: True.
        norm_cfg (dict): normalisation layers (mmcv ``build_norm_layer``).
            Default: ``dict(type='BN', requires_grad=False)`` (frozen affine).
        dropout (Sequence[float]): Dropout2d probabilities of ``b6`` and ``b7``
            (each used twice inside its bottleneck). Default: ``(0.3, 0.5)``.
        init_cfg (dict | list[dict], optional): MMEngine init config. Without it
            the layers keep PyTorch's default init. ``dict(type='Pretrained',
            checkpoint=PATH, prefix=None)`` loads a PSA / EDAM / converted
            checkpoint through :func:`convert_resnet38d_state_dict`, strictly
            (every key, shapes checked); ``prefix`` (e.g. ``'backbone.'``) keeps
            only the keys under it, prefix removed.

    Attributes:
        stage_channels (tuple[int]): output channels of the 7 stages.
        stage_strides (tuple[int]): output strides of the 7 stages.
        out_channels (tuple[int]): channels of the returned outputs.
    """

    STAGE_CHANNELS = (64, 128, 256, 512, 1024, 2048, 4096)
    STAGE_STRIDES = (1, 2, 4, 8, 8, 8, 8)
    NUM_STAGES = 7

    def __init__(self,
                 final_relu: bool = False,
                 out_indices: Union[int, Sequence[int]] = (6, ),
                 frozen_stages: int = 1,
                 norm_eval: bool = True,
                 norm_cfg: Optional[dict] = None,
                 dropout: Sequence[float] = (0.3, 0.5),
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        n = self.NUM_STAGES
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        idx = []
        for i in out_indices:
            if not -n <= int(i) < n:
                raise ValueError(f'ResNet38d: out_indices must be in '
                                 f'[{-n}, {n - 1}], got {tuple(out_indices)}')
            idx.append(int(i) % n)
        if not idx:
            raise ValueError('ResNet38d: out_indices is empty')
        if not -1 <= int(frozen_stages) < n:
            raise ValueError(f'ResNet38d: frozen_stages must be in '
                             f'[-1, {n - 1}], got {frozen_stages}')
        dropout = tuple(float(p) for p in dropout)
        if len(dropout) != 2 or not all(0. <= p < 1. for p in dropout):
            raise ValueError('ResNet38d: dropout must be two probabilities in '
                             f'[0, 1) (b6, b7), got {dropout}')
        self.final_relu = bool(final_relu)
        self.out_indices = tuple(idx)
        self.frozen_stages = int(frozen_stages)
        self.norm_eval = bool(norm_eval)
        self.norm_cfg = dict(type='BN', requires_grad=False) \
            if norm_cfg is None else dict(norm_cfg)
        self.dropout = dropout
        self.stage_channels = self.STAGE_CHANNELS
        self.stage_strides = self.STAGE_STRIDES
        self.out_channels = tuple(self.STAGE_CHANNELS[i]
                                  for i in self.out_indices)

        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        for spec in RESNET38D_BLOCKS:
            if spec.kind == 'basic':
                block = ResNet38dBlock(spec, self.norm_cfg)
            else:
                block = ResNet38dBottleneck(spec, self.norm_cfg,
                                            dropout[spec.dropout_index])
            self.add_module(spec.name, block)
        self.bn7 = _norm(self.norm_cfg, RESNET38D_BLOCKS[-1].out_channels)
        self._freeze_stages()

    # ------------------------------------------------------------------ init
    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None) -> None:
        """Load a PSA / EDAM / SEAM / converted ResNet-38d checkpoint file.

        Args:
            checkpoint (str): local path (or anything MMEngine's
                ``CheckpointLoader`` reads offline).
            prefix (str, optional): use only keys starting with it, prefix removed.

        Raises:
            ResNet38dStateDictError: (a ``ValueError``) the keys or shapes do not
                fit; the message names the file and the keys.
        """
        self._load_converted(checkpoint, prefix, convert_resnet38d_state_dict,
                             'ResNet38d')

    # ---------------------------------------------------------------- freeze
    def _stage_modules(self, stage: int) -> List[nn.Module]:
        return [getattr(self, name) for name in RESNET38D_STAGES[stage]]

    def _freeze_stages(self) -> None:
        for stage in range(self.frozen_stages + 1):
            freeze_modules(self._stage_modules(stage))

    def train(self, mode: bool = True) -> 'ResNet38d':
        """Train mode with frozen stages and (``norm_eval``) every BN in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    # --------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the features of the stages in ``out_indices`` (a tuple)."""
        outs: Dict[int, torch.Tensor] = {}
        wanted = set(self.out_indices)
        last = max(self.out_indices)
        x = self.conv1a(x)
        for stage in range(1, self.NUM_STAGES):
            blocks = [
                m for m in self._stage_modules(stage) if m is not self.bn7
            ]
            first = blocks[0]
            if stage - 1 in wanted:
                if stage - 1 == last:
                    # nothing after it is needed: only the BN-ReLU
                    outs[stage - 1] = F.relu(first.bn_branch2a(x))
                    break
                x, outs[stage - 1] = first(x, return_bn_relu=True)
            else:
                x = first(x)
            for block in blocks[1:]:
                x = block(x)
        if 6 in wanted:
            x = self.bn7(x)
            outs[6] = F.relu(x) if self.final_relu else x
        return tuple(outs[i] for i in self.out_indices)
