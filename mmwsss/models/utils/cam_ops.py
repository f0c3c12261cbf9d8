"""The class-map operations every WSSS method shares: CAM normalisation and input
erasing.

* :func:`normalize_cams` is the one CAM normalisation of mmwsss (OAA Eq. 2,
  ``A^c = ReLU(F^c) / max ReLU(F^c)``), used by CAM inference
  (:class:`~mmwsss.models.WSClassifier`), online accumulation
  (:class:`~mmwsss.engine.hooks.OAAHook`) and the export of stored maps, with the one
  epsilon :data:`CAM_EPS`.
* :func:`erase_inputs` erases regions of the (normalised, bottom/right padded) network
  input: ``I* = I - T(A) * (I - fill)``. With a hard mask it is the attention drop of
  OAA++ (Alg. 1, the pixels above delta set to the mean colour); with a soft,
  differentiable mask ``T(A)`` it is GAIN's ``I* = I - T(A) * I`` (Li et al., CVPR 2018,
  Eq. 3, ``fill = 0``). See ``docs/extending.md``.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: the epsilon of :func:`normalize_cams` (an all non-positive map gives zeros, no NaN)
CAM_EPS = 1e-5


def normalize_cams(cams: torch.Tensor,
                   valid: Optional[torch.Tensor] = None,
                   eps: float = CAM_EPS) -> torch.Tensor:
    """Max-normalise class maps per image and class: ``A = ReLU(M) / (max ReLU(M) +
    eps)`` over the last two dimensions (OAA Eq. 2).

    Args:
        cams (Tensor): (..., h, w) class maps (any sign; negative values are 0).
        valid (Tensor, optional): bool mask broadcastable to ``cams``: the maximum
            is taken over the valid pixels only (e.g. the part of a canonical frame
            a crop showed); the result is not masked.
        eps (float): added to the maximum. Use the default everywhere.

    Returns:
        Tensor: maps in [0, 1) of the shape of ``cams``.
    """
    a = F.relu(cams)
    m = a if valid is None else a * valid.to(a.dtype)
    return a / (m.amax(dim=(-2, -1), keepdim=True) + eps)


def minmax_normalize_cams(cams: torch.Tensor,
                          eps: float = CAM_EPS) -> torch.Tensor:
    """``(x - min) / (max - min)`` per map over the last two dimensions, zeros for a
    map whose range is not above ``eps`` (the min-max step of the official OAA export
    ``res.py``, used when stored maps are upsampled; ``docs/cam_format.md``)."""
    lo = cams.amin(dim=(-2, -1), keepdim=True)
    hi = cams.amax(dim=(-2, -1), keepdim=True)
    rng = hi - lo
    return torch.where(rng > eps, (cams - lo) / rng.clamp_min(eps),
                       torch.zeros_like(cams))


def _hw(shape) -> Tuple[int, int]:
    return int(shape[0]), int(shape[1])


def erase_inputs(inputs: torch.Tensor,
                 masks: Sequence[Optional[torch.Tensor]],
                 img_shapes: Sequence[Sequence[int]],
                 fill_value: float = 0.0) -> torch.Tensor:
    """Erase regions of a padded input batch: ``I* = I - T * (I - fill_value)``.

    Each image's mask ``T`` covers its valid (unpadded) area, the top-left
    ``img_shape`` of the batch (MMSeg's data preprocessor pads bottom/right); the
    padding is never touched. A mask of another size is resized bilinearly
    (``align_corners=False``) to ``img_shape`` first.

    * hard masks (bool): the selected pixels become ``fill_value`` in every channel
      and all other pixels are bit-identical (OAA++ attention drop);
    * soft masks (float in [0, 1]): the erasing is differentiable with respect to the
      mask (GAIN's ``I* = I - T(A) * I`` with ``fill_value = 0``).

    Args:
        inputs (Tensor): (N, C, H, W) normalised input batch.
        masks (list): per image a (h, w) or (1, h, w) mask, or None (not erased).
        img_shapes (list): per image the (img_h, img_w) of its valid area.
        fill_value (float): the value erased pixels take (0 = the dataset mean
            colour in the normalised space).

    Returns:
        Tensor: ``inputs`` itself when no mask is given, else a new tensor
        (``inputs`` is never modified in place).
    """
    if inputs.dim() != 4:
        raise ValueError(
            f'inputs must have shape (N, C, H, W), got {tuple(inputs.shape)}')
    n, _, H, W = inputs.shape
    if len(masks) != n or len(img_shapes) != n:
        raise ValueError(f'got {len(masks)} masks and {len(img_shapes)} image '
                         f'shapes for a batch of {n} images')
    if all(m is None for m in masks):
        return inputs
    hard = all(m is None or m.dtype == torch.bool for m in masks)
    full = []
    for i, (mask, shape) in enumerate(zip(masks, img_shapes)):
        h, w = _hw(shape)
        if h > H or w > W:
            raise ValueError(f'img_shape {(h, w)} of sample {i} is larger than '
                             f'the input {(H, W)}')
        if mask is None:
            full.append(inputs.new_zeros((1, H, W),
                                         dtype=torch.bool if hard else None))
            continue
        m = mask.to(device=inputs.device)
        if m.dim() == 2:
            m = m[None]
        if m.dim() != 3 or m.shape[0] != 1:
            raise ValueError('an erase mask must have shape (h, w) or (1, h, w), '
                             f'got {tuple(mask.shape)}')
        if tuple(m.shape[-2:]) != (h, w):
            if hard:  # a hard mask stays hard
                m = F.interpolate(m[None].float(), size=(h, w),
                                  mode='nearest')[0] > 0.5
            else:
                m = F.interpolate(
                    m[None].to(inputs.dtype), size=(h, w), mode='bilinear',
                    align_corners=False)[0]
        elif not hard:
            m = m.to(inputs.dtype)
        full.append(F.pad(m, (0, W - w, 0, H - h)))
    t = torch.stack(full)  # (N, 1, H, W)
    if hard:  # exact: erased pixels equal fill_value, the others are untouched
        return inputs.masked_fill(t, fill_value)
    if fill_value == 0:
        return inputs - t * inputs
    return inputs - t * (inputs - fill_value)
