"""VGG-16's own classifier (fc6, fc7, fc8) as a WSSS head: GAIN's classifier.

Li, Wu, Peng, Ernst, Fu, "Tell Me Where to Look: Guided Attention Inference
Network", CVPR 2018 (TPAMI 2020), §4.1: "VGG pretrained from the ImageNet", and §2:
the attention is obtained "without changing the network structure"; the attention
layer is "the last convolutional layer" (after Eq. 2), relu5_3 for VGG-16.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmwsss.models.backbones.pretrained_mixin import ConvertedPretrainedMixin
from mmwsss.models.backbones.vgg_weights import convert_vgg16_fc_state_dict
from mmwsss.models.utils import grad_cam
from mmwsss.registry import MODELS
from .base_cam_head import BaseCAMHead


@MODELS.register_module()
class VGGFCHead(ConvertedPretrainedMixin, BaseCAMHead):
    """The fully connected classifier of VGG-16, with any number of classes.

    ``[pool5] -> AdaptiveAvgPool2d(pooled_size) -> flatten -> fc6 -> ReLU ->
    Dropout -> fc7 -> ReLU -> Dropout -> fc8 (K)``: torchvision's
    ``vgg16().avgpool`` + ``classifier`` with fc8 replaced by ``num_classes``
    outputs. The adaptive pooling (torchvision's) makes any input size work (321 x
    321 crops: relu5_3 20 x 20, pool5 10 x 10, pooled to 7 x 7); at 224 x 224 it
    is the identity, and this head on
    ``DeepLabVGG16('plain', with_last_pool=False)`` computes exactly
    ``torchvision.models.vgg16()`` (tested).

    GAIN's classifier (Li et al., CVPR 2018, §4.1; TPAMI 2020, §4.1) is the stock
    ImageNet VGG with the classification head of VGG, so its Grad-CAM attention is
    taken at relu5_3 (stride 16), the input of this head: :meth:`pre_logits` is the
    selected backbone feature (``with_pool5=True`` applies pool5 here, so the
    backbone ends at relu5_3), :meth:`outputs_from_pre_logits` the rest, and
    :meth:`linear_classifier` is None (no closed form: ``GAINHead`` uses autograd
    Grad-CAM, Eqs. 1-2).

    The outputs are the (N, K) image logits (:meth:`image_logits` is the
    identity); the loss is the multi-label soft margin loss (the contract's
    default, the ``L_cl`` of GAIN Eq. 6). There is no score map, so
    :meth:`class_maps` of the outputs is an error; the class maps of
    :meth:`predict_maps` (CAM export) are Grad-CAM maps at relu5_3, computed from
    the features (:attr:`cam_requires_grad`), i.e. the plain classifier's
    Grad-CAM. Wrapped in :class:`~mmwsss.models.heads.GAINHead`
    (``cls_head=dict(type='VGGFCHead', ...)``) the same maps are GAIN's attention,
    trained inside the graph.

    ImageNet weights: ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` loads
    fc6 and fc7 of a VGG-16 file (torchvision's ``vgg16-397923af.pth``:
    ``classifier.0`` / ``classifier.3``; Caffe-style ``fc6`` / ``fc7``;
    :func:`~mmwsss.models.backbones.convert_vgg16_fc_state_dict`), strictly and
    from a local path; fc8 is new (normal, std 0.01, zero bias, as torchvision
    initialises every linear layer of VGG). ``prefix`` selects keys as for the
    backbone (e.g. ``'head.cls_head.'`` in a GAIN checkpoint).

    Args:
        in_channels (int): channels of the selected backbone feature (512).
        fc_channels (int): outputs of fc6 and fc7 (4096; ImageNet weights need
            4096 with ``in_channels=512`` and ``pooled_size=7``).
        pooled_size (int): output size of the adaptive average pooling (7).
        with_pool5 (bool): apply VGG's pool5 (2x2 max, stride 2) to the input
            first; set it when the backbone ends at relu5_3
            (``DeepLabVGG16(..., with_last_pool=False)``), clear it for a backbone
            that pools itself. Default True.
        dropout_ratio (float): dropout after fc6 and fc7 (0.5, VGG's).
        init_std (float): std of the normal init of the linear layers (0.01).
        init_cfg (dict | list, optional): MMEngine init config; a ``Pretrained``
            entry loads fc6 / fc7 as above.
        **kwargs: :class:`BaseCAMHead` arguments (``num_classes``,
            ``loss_weight``, ``in_index``).
    """
    #: CAM inference computes Grad-CAM: gradients of the logits w.r.t. the input
    cam_requires_grad = True

    def __init__(self,
                 in_channels: int = 512,
                 fc_channels: int = 4096,
                 pooled_size: int = 7,
                 with_pool5: bool = True,
                 dropout_ratio: float = 0.5,
                 init_std: float = 0.01,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if not 0 <= float(dropout_ratio) < 1:
            raise ValueError('VGGFCHead: dropout_ratio must be in [0, 1), got '
                             f'{dropout_ratio!r}')
        for name, value in (('in_channels', in_channels),
                            ('fc_channels', fc_channels),
                            ('pooled_size', pooled_size)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < 1:
                raise ValueError(f'VGGFCHead: {name} must be an int >= 1, got '
                                 f'{value!r}')
        self.in_channels = in_channels
        self.fc_channels = fc_channels
        self.pooled_size = pooled_size
        self.with_pool5 = bool(with_pool5)
        self.dropout_ratio = float(dropout_ratio)
        self.init_std = float(init_std)
        self.pool5 = nn.MaxPool2d(kernel_size=2, stride=2) if self.with_pool5 \
            else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(pooled_size)
        self.fc6 = nn.Linear(in_channels * pooled_size * pooled_size,
                             fc_channels)
        self.drop6 = nn.Dropout(self.dropout_ratio)
        self.fc7 = nn.Linear(fc_channels, fc_channels)
        self.drop7 = nn.Dropout(self.dropout_ratio)
        self.fc8 = nn.Linear(fc_channels, self.num_classes)
        self._default_init()

    # ------------------------------------------------------------------ init
    def _default_init(self) -> None:
        """torchvision's VGG init of the linear layers: normal(0, 0.01), 0 bias."""
        for fc in (self.fc6, self.fc7, self.fc8):
            nn.init.normal_(fc.weight, 0, self.init_std)
            nn.init.constant_(fc.bias, 0)

    def load_pretrained(self, checkpoint: str,
                        prefix: Optional[str] = None) -> None:
        """Load fc6 / fc7 of a VGG-16 checkpoint file (local path); fc8 keeps
        its initialisation."""
        state = self._read_state_dict(checkpoint, prefix)
        try:
            converted = convert_vgg16_fc_state_dict(state)
        except KeyError as e:
            raise type(e)(f'{checkpoint}: {e}') from e
        own = {k: v for k, v in self.state_dict().items()
               if k.startswith(('fc6.', 'fc7.'))}
        bad = [f'{k} {tuple(converted[k].shape)} (expected {tuple(v.shape)})'
               for k, v in own.items() if converted[k].shape != v.shape]
        if bad:
            raise ValueError(
                f'VGGFCHead: {checkpoint}: ' + ', '.join(bad) + ': ImageNet '
                'VGG-16 weights need in_channels=512, pooled_size=7 and '
                'fc_channels=4096')
        missing, unexpected = self.load_state_dict(converted, strict=False)
        assert not unexpected and sorted(missing) == ['fc8.bias', 'fc8.weight']
        print_log(f'VGGFCHead: loaded ImageNet fc6 / fc7 from {checkpoint} '
                  '(fc8 is new)', logger='current')

    # --------------------------------------------------------------- forward
    def outputs_from_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K) logits from the (N, C, h, w) features ``x`` (relu5_3)."""
        x = torch.flatten(self.avgpool(self.pool5(x)), 1)
        x = self.drop6(torch.relu(self.fc6(x)))
        x = self.drop7(torch.relu(self.fc7(x)))
        return self.fc8(x)

    def forward(self, feats) -> torch.Tensor:
        """(N, K) image logits (the classifier's ``tensor`` mode)."""
        return self.outputs_from_pre_logits(self.pre_logits(feats))

    # ------------------------------------------------------------ semantics
    def image_logits(self, outputs: torch.Tensor) -> torch.Tensor:
        """The outputs themselves: (N, K) logits."""
        if outputs.dim() != 2:
            raise ValueError('VGGFCHead.image_logits expects its (N, K) outputs, '
                             f'got shape {tuple(outputs.shape)}')
        return outputs

    def class_maps(self, outputs) -> torch.Tensor:
        raise ValueError(
            'VGGFCHead has no class score map: its outputs are (N, K) logits of '
            'fully connected layers, so class maps cannot be read from them. '
            'Its maps are Grad-CAM maps of the features: predict_maps (CAM '
            "export) computes them; for training-time attention wrap it: "
            "head=dict(type='GAINHead', cls_head=dict(type='VGGFCHead', ...)) "
            '(docs/methods/gain.md)')

    def predict_maps(self, feats, data_samples: Optional[Sequence] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(Grad-CAM of every class at :meth:`pre_logits` (N, K, h, w), the
        (N, K) logits): ``ReLU(sum_k w_k f_k)`` with ``w = GAP(ds^c / df)`` (GAIN
        Eqs. 1-2; first order, nothing written to ``.grad``)."""
        with torch.enable_grad():
            f = self.pre_logits(feats)
            if not f.requires_grad:
                f = f.detach().requires_grad_()
            logits = self.outputs_from_pre_logits(f)
            n, k = logits.shape
            images = torch.arange(n, device=f.device).repeat_interleave(k)
            classes = torch.arange(k, device=f.device).repeat(n)
            maps = grad_cam(f, logits, (images, classes), create_graph=False,
                            pack_images=True)
        return maps.reshape(n, k, *maps.shape[-2:]).detach(), logits.detach()
