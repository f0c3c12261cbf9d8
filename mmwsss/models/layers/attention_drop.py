"""The attention drop layer of OAA++.

References: docs/methods/oaa.md, section 'References'.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.registry import MODELS
from ..utils.cam_ops import erase_inputs


@MODELS.register_module()
class AttentionDrop(nn.Module):
    """Attention drop layer of OAA++ (OAA [T] §3.3, Alg. 1).

    For each training image, Alg. 1 draws ``r ~ U(0, 1)``. If ``r < beta`` the network
    is fed ``I* = S(I, A_{t-1}, delta)``: the input ``I`` with the pixels where the
    image's previous attention ``A_{t-1}`` exceeds ``delta`` occluded. Otherwise it is
    fed ``I`` unchanged. The attention ``A_t`` of this forward pass is then accumulated
    as usual (Eq. 4, with the normal gate). The classification loss uses the occluded
    image and the unchanged labels. Erasing the regions the classifier already found
    pushes its attention to new object parts, and accumulation collects them. The
    product of OAA++ is the set of cumulative maps, not the final model, so the layer
    works only during training.

    Where the paper is silent, this layer follows the official code [C]
    (``models/vgg.py``, ``scripts/train.py``, ``train+.sh``); where [C] is tied to
    its batch size of 1, the choice is explained below:

    - **Where:** on the network input, after mean/std normalisation and padding and
      before the backbone: it is a batch augment of
      :class:`~mmwsss.models.WSSSDataPreProcessor`
      (``model.data_preprocessor.batch_augments=[dict(type='AttentionDrop')]``), so
      the classifier's ``loss`` sees the erased images. It is active only in
      training mode (``self.training``) and only when ``data_samples`` is given. At
      test and inference time the input is returned unchanged.
    - **Random draw:** one per image (per batch in [C], which is the same thing at
      [C]'s batch size 1). ``r_i`` is the sample's ``drop_rand`` meta value when the
      hook supplies one. That value is a float in [0, 1), so draws are reproducible
      across resume and across world sizes. Without it, ``r_i`` comes from
      ``torch.rand(())`` (the global CPU torch RNG, so ``torch.manual_seed`` makes it
      reproducible). Image ``i`` is dropped iff ``r_i < drop_prob`` and it has a
      previous map. With ``drop_prob == 0`` no random number is drawn, so the global
      RNG stream is the same as without the layer.
    - **Previous map** ``A_{t-1}``: ``data_samples[i].prev_attention``, a
      :class:`~mmengine.structures.PixelData` whose ``data`` has shape (K, h, w) with
      values in [0, 1], one channel per ground-truth class. It is the last *accepted*
      attention map of each GT class, as in [C] (the alternative, the last computed
      map, is not used). The OAA hook (``OAAHook``) provides these maps: it warps the
      maps stored in the canonical frame into the current augmentation, i.e. the
      frame of the augmented, unpadded image of size ``img_shape``. With no previous
      map (e.g. the first epochs under [C]'s schedule) nothing is dropped.
    - **Mask:** the union over the K channels (GT classes) of ``{A^c > delta}``,
      i.e. ``max_c A^c > delta`` with a *strict* ``>``. A map whose size is not
      ``img_shape`` (e.g. the stride-8 feature-resolution map) is first resized
      bilinearly (``align_corners=False``) to ``img_shape``. [C] does the same
      (``cv2.resize`` to the input size). So ``threshold >= 1`` never drops anything.
    - **Occlusion value:** ``fill_value`` = 0 by default. In the normalised input
      space this is the dataset mean colour, as in [C]. It is written in all channels.
      The mask covers only the top-left ``img_shape`` region of a zero-padded batch,
      so padding is never touched. All other pixels are bit-identical, and ``inputs``
      is never modified in place (it is cloned when something is dropped).

    Every sample gets the meta fields ``attention_dropped`` (bool: the ``r_i < beta``
    branch was taken and a previous map existed) and ``dropped_ratio`` (float: the
    fraction of the ``img_shape`` pixels erased; it can be 0 even when
    ``attention_dropped`` is True) so that hooks can log them.

    Defaults: ``beta = 0.5`` and ``delta = 0.6``, the best values in [T] Tab. 8 and the
    values used in [C] ``train+.sh``.

    Args:
        drop_prob (float): drop rate beta in [0, 1]. Default: 0.5.
        threshold (float): attention threshold delta. Default: 0.6.
        fill_value (float): value of the occluded pixels in the normalised input
            space. Default: 0.0 (the mean colour).
    """

    def __init__(self,
                 drop_prob: float = 0.5,
                 threshold: float = 0.6,
                 fill_value: float = 0.0):
        super().__init__()
        try:
            drop_prob = float(drop_prob)
        except (TypeError, ValueError):
            raise ValueError(
                f'drop_prob must be a number in [0, 1], got {drop_prob!r}')
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(
                f'drop_prob must be in [0, 1], got {drop_prob!r}')
        self.drop_prob = drop_prob
        self.threshold = float(threshold)
        self.fill_value = float(fill_value)

    def extra_repr(self) -> str:
        return (f'drop_prob={self.drop_prob}, threshold={self.threshold}, '
                f'fill_value={self.fill_value}')

    @staticmethod
    def _prev_attention(data_sample) -> Optional[torch.Tensor]:
        """The previous attention tensor of a sample, or None if there is none."""
        prev = data_sample.get('prev_attention', None)
        if prev is None:
            return None
        data = prev.get('data', None) if hasattr(prev, 'get') else prev
        if data is None:
            return None
        data = torch.as_tensor(data)
        if data.dim() == 2:
            data = data[None]
        if data.dim() != 3:
            raise ValueError('prev_attention.data must have shape (K, h, w), '
                             f'got {tuple(data.shape)}')
        if data.numel() == 0:
            return None
        return data

    def _draw(self, data_sample) -> float:
        """The random number ``r_i`` of one image (Alg. 1)."""
        r = data_sample.metainfo.get('drop_rand', None)
        if r is not None:
            return float(r)
        return float(torch.rand(()))

    def drop_mask(self, prev: torch.Tensor,
                  img_shape: Tuple[int, int]) -> torch.Tensor:
        """Boolean mask (img_h, img_w) of ``max_c upsample(prev^c) > threshold``."""
        img_h, img_w = int(img_shape[0]), int(img_shape[1])
        prev = prev.float()
        if tuple(prev.shape[-2:]) != (img_h, img_w):
            prev = F.interpolate(
                prev[None], size=(img_h, img_w), mode='bilinear',
                align_corners=False)[0]
        return prev.amax(dim=0) > self.threshold

    def forward(self, inputs: torch.Tensor,
                data_samples: Optional[Sequence] = None
                ) -> Tuple[torch.Tensor, Optional[Sequence]]:
        """Occlude the high-attention regions of the input images.

        A batch augment of :class:`~mmwsss.models.WSSSDataPreProcessor`: called
        after normalisation and padding, in training only.

        Args:
            inputs (Tensor): normalised input batch of shape (N, C, H, W), possibly
                zero-padded at the bottom/right.
            data_samples (list, optional): N data samples, each with ``img_shape``
                meta and optionally ``prev_attention`` and ``drop_rand``.

        Returns:
            tuple: ``(inputs, data_samples)``; ``inputs`` is the given tensor when
            nothing is erased, otherwise a new tensor with the dropped pixels set to
            ``fill_value`` (:func:`~mmwsss.models.utils.erase_inputs`).
        """
        if not self.training or data_samples is None:
            return inputs, data_samples
        if inputs.dim() != 4:
            raise ValueError('inputs must have shape (N, C, H, W), got '
                             f'{tuple(inputs.shape)}')
        if len(data_samples) != inputs.shape[0]:
            raise ValueError(
                f'got {len(data_samples)} data samples for a batch of '
                f'{inputs.shape[0]} images')
        H, W = inputs.shape[-2:]
        masks, shapes = [], []
        for i, ds in enumerate(data_samples):
            dropped, ratio, mask = False, 0.0, None
            r = self._draw(ds) if self.drop_prob > 0 else 1.0
            prev = self._prev_attention(ds)
            img_shape = ds.metainfo.get('img_shape', (H, W))
            img_h, img_w = int(img_shape[0]), int(img_shape[1])
            if r < self.drop_prob and prev is not None:
                if img_h > H or img_w > W:
                    raise ValueError(
                        f'img_shape {(img_h, img_w)} of sample {i} is larger '
                        f'than the input {(H, W)}')
                with torch.no_grad():
                    mask = self.drop_mask(prev.to(inputs.device),
                                          (img_h, img_w))
                dropped = True
                num = int(mask.sum())
                ratio = num / float(max(img_h * img_w, 1))
                if num == 0:
                    mask = None
            masks.append(mask)
            shapes.append((min(img_h, H), min(img_w, W)))
            ds.set_metainfo(
                dict(attention_dropped=dropped, dropped_ratio=ratio))
        return erase_inputs(inputs, masks, shapes, self.fill_value), data_samples
