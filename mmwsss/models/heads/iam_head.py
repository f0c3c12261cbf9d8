"""Head of the integral attention model (OAA+).

References: docs/methods/oaa.md, section 'References'.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

# registers HybridAttentionLoss, the default loss of the head
from mmwsss.models.losses.hybrid_attention_loss import \
    HybridAttentionLoss  # noqa: F401
from mmwsss.registry import MODELS

from .cam_head import CAMHead


@MODELS.register_module()
class IAMHead(CAMHead):
    """Head of the integral attention model (IAM; OAA+, [T] §3.4, [I] §3.3).

    The classification head of :class:`CAMHead` *without GAP and without the
    classification loss*: the same extra convs and class-aware 1x1 conv give the score
    map ``F`` (N, K, h, w), and ``q = sigmoid(F)`` is trained at every location
    against soft targets ``p`` (the final cumulative OAA/OAA++ maps, loaded by
    :class:`~mmwsss.datasets.transforms.LoadAttentionTargets`) with the hybrid loss
    (:class:`~mmwsss.models.losses.HybridAttentionLoss`, Eqs. 7-9).

    Targets ([T] §3.4): each sample's ``gt_attention`` (K, img_h, img_w) lies in the
    augmented, unpadded image; it is placed at the top-left of the padded network
    input (the data preprocessor pads bottom/right), the padding is marked invalid
    (ignored by the loss), classes absent from ``gt_label`` get all-zero targets (all
    in ``N-``), and targets and mask are resized bilinearly to the score map. The
    targets are neither re-thresholded nor renormalised (they already lie in [0, 1],
    with maximum 1 under max fusion).

    ``forward``, ``class_maps``, ``image_logits`` and ``cam`` are inherited, so
    :class:`~mmwsss.models.classifiers.WSClassifier` predicts IAM maps
    ``ReLU(F) / max(F)`` unchanged ([T] §3.4: the maps "can be obtained directly from
    the class-aware convolutional layer"; ``pred_score`` = sigmoid(GAP(F)) is then only
    a by-product, the IAM is not trained for it).

    Args:
        loss (dict): config of the pixel-wise loss, called as
            ``loss(logits, targets, valid)``; its ``loss_name`` is the key of the
            returned losses dict.
        **kwargs: :class:`CAMHead` arguments (``in_channels``, ``num_classes``,
            ``num_extra_convs``, ``extra_channels``, ``init_std``, ``loss_weight``
            -- multiplies the loss on top of the loss module's own ``loss_weight``;
            keep one of them at 1 --, ``in_index``, ``init_cfg``).
    """

    def __init__(self, loss: dict = dict(type='HybridAttentionLoss'), **kwargs):
        super().__init__(**kwargs)
        self.loss_decode = MODELS.build(loss)

    @property
    def loss_name(self) -> str:
        return getattr(self.loss_decode, 'loss_name', 'loss_hybrid')

    @staticmethod
    def _input_shape(data_samples: Sequence) -> Tuple[int, int]:
        """(H_in, W_in) of the padded network input of the batch.

        ``batch_input_shape`` if the data preprocessor recorded it; otherwise
        ``img_shape`` + the bottom/right ``padding_size`` recorded by MMSeg's
        ``SegDataPreProcessor`` (``stack_batch``); otherwise the largest
        ``img_shape`` of the batch (exact unless the preprocessor padded further,
        e.g. to a fixed ``size`` or a ``size_divisor``).
        """
        shapes = []
        for ds in data_samples:
            meta = ds.metainfo
            if meta.get('batch_input_shape') is not None:
                shapes.append(tuple(int(v) for v in
                                    meta['batch_input_shape'][:2]))
            elif meta.get('padding_size') is not None and \
                    meta.get('img_shape') is not None:
                # (left, right, top, bottom)
                pad = meta['padding_size']
                h, w = meta['img_shape'][:2]
                shapes.append((int(h) + int(pad[3]), int(w) + int(pad[1])))
        if shapes:
            if len(set(shapes)) != 1:
                raise ValueError(
                    f'IAMHead: the samples of one batch disagree about the '
                    f'padded input shape: {sorted(set(shapes))}')
            return shapes[0]
        hw = [_img_shape(ds) for ds in data_samples]
        return max(h for h, _ in hw), max(w for _, w in hw)

    def get_targets(self, data_samples: Sequence, out_shape: Sequence[int],
                    device: torch.device,
                    dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        """Soft targets (N, K, h, w) and the valid mask (N, h, w) at the score map
        resolution ``out_shape`` = (h, w)."""
        for ds in data_samples:
            if 'gt_attention' not in ds:
                raise ValueError(
                    'IAMHead needs data_sample.gt_attention: add '
                    'LoadAttentionTargets to the train pipeline (image id '
                    f"{ds.metainfo.get('img_id')!r})")
            if 'gt_label' not in ds:
                raise ValueError(
                    'IAMHead needs data_sample.gt_label (image id '
                    f"{ds.metainfo.get('img_id')!r}): use PackWSSSInputs")
        in_h, in_w = self._input_shape(data_samples)
        n, k = len(data_samples), self.num_classes
        targets = torch.zeros((n, k, in_h, in_w), device=device, dtype=dtype)
        valid = torch.zeros((n, 1, in_h, in_w), device=device, dtype=dtype)
        for i, ds in enumerate(data_samples):
            att = ds.gt_attention.data
            if att.dim() != 3 or att.shape[0] != k:
                raise ValueError(
                    f"gt_attention of image id {ds.metainfo.get('img_id')!r} "
                    f'has shape {tuple(att.shape)} but IAMHead.num_classes is '
                    f'{k}: expected ({k}, img_h, img_w)')
            img_h, img_w = _img_shape(ds, default=att.shape[-2:])
            if att.shape[-2] < img_h or att.shape[-1] < img_w or \
                    img_h > in_h or img_w > in_w:
                raise ValueError(
                    f"gt_attention of image id {ds.metainfo.get('img_id')!r} "
                    f'has size {tuple(att.shape[-2:])}; expected img_shape '
                    f'{(img_h, img_w)} within the input {(in_h, in_w)}')
            att = att[:, :img_h, :img_w].to(device=device, dtype=dtype)
            label = ds.gt_label.to(device=device).reshape(-1)
            if label.shape[0] != k:
                raise ValueError(
                    f'gt_label has {label.shape[0]} classes but '
                    f'IAMHead.num_classes is {k}')
            # absent classes: all-zero targets ([T] §3.4), i.e. all in N-
            att = att * (label > 0).to(dtype)[:, None, None]
            targets[i, :, :img_h, :img_w] = att
            valid[i, :, :img_h, :img_w] = 1
        size = tuple(int(v) for v in out_shape[:2])
        if (in_h, in_w) != size:
            targets = F.interpolate(
                targets, size=size, mode='bilinear', align_corners=False)
            valid = F.interpolate(
                valid, size=size, mode='bilinear', align_corners=False)
        return targets, valid[:, 0] > 0.5

    def loss_by_outputs(self, outputs, data_samples: Sequence) -> dict:
        """Hybrid loss of ``q = sigmoid(F)`` against the soft targets (Eqs. 7-9)."""
        targets, valid = self.get_targets(
            data_samples, outputs.shape[-2:], outputs.device, torch.float32)
        loss = self.loss_decode(outputs, targets, valid)
        return {self.loss_name: self.loss_weight * loss}


def _img_shape(ds, default=None) -> Tuple[int, int]:
    meta = ds.metainfo
    shape = meta.get('img_shape', default)
    if shape is None:
        shape = ds.gt_attention.data.shape[-2:]
    return int(shape[0]), int(shape[1])
