"""Map network outputs of an augmented image back into the image's canonical frame.

The canonical frame of an image is its original size ``ori_shape`` (optionally
downsampled, e.g. to the network's output stride). Online methods keyed by image id
(OAA accumulation, attention drop) keep their state there, so that random resize,
crop and flip do not change which pixel a value belongs to.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F


def to_canonical(maps: torch.Tensor, meta: dict, input_shape: Sequence[int],
                 canon_shape: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Invert the augmentation of one image for a stack of maps.

    Assumes the pipeline order resize -> crop -> flip -> pad (MMSeg's usual order;
    ``RandomCropWithBox`` records the crop box, mmcv's resize ``scale_factor``).

    Every canonical pixel centre is traced through the augmentation into the network
    input and the maps are sampled there with one bilinear interpolation
    (``grid_sample``), so when the canonical grid equals the feature grid of an
    unaugmented input (e.g. OAA's short-side-224 frame at stride 8) the maps are
    copied exactly, without the blur of an up- then down-sampling.

    Args:
        maps: (K, h, w) maps over the (padded) network input of this image.
        meta: the data sample's metainfo: ``ori_shape``, ``img_shape`` (after crop),
            optional ``scale_factor`` (w, h), ``crop_bbox`` (y1, y2, x1, x2), ``flip``,
            ``flip_direction``.
        input_shape: (H_in, W_in) of the padded network input.
        canon_shape: (Hc, Wc) of the canonical frame (e.g. ``ori_shape`` / stride).

    Returns:
        ``(canon, valid)``: (K, Hc, Wc) maps and a (Hc, Wc) bool mask of the pixels
        the augmented view covered (outside a crop nothing is known).
    """
    hin, win = (int(v) for v in input_shape[:2])
    img_h, img_w = meta.get('img_shape', (hin, win))[:2]
    ori_h, ori_w = meta['ori_shape'][:2]
    sf = meta.get('scale_factor', (1.0, 1.0))
    res_h, res_w = int(ori_h * sf[1] + 0.5), int(ori_w * sf[0] + 0.5)
    y1, y2, x1, x2 = meta.get('crop_bbox', (0, img_h, 0, img_w))
    hc, wc = (int(v) for v in canon_shape[:2])
    dev = maps.device
    # canonical pixel centres -> resized image -> crop -> flip (continuous coords)
    ys = (torch.arange(hc, device=dev, dtype=torch.float32) + 0.5) * (
        res_h / hc) - y1
    xs = (torch.arange(wc, device=dev, dtype=torch.float32) + 0.5) * (
        res_w / wc) - x1
    valid_y = (ys >= 0) & (ys <= min(y2 - y1, img_h))
    valid_x = (xs >= 0) & (xs <= min(x2 - x1, img_w))
    if meta.get('flip', False):
        if meta.get('flip_direction', 'horizontal') == 'horizontal':
            xs = img_w - xs
        else:
            ys = img_h - ys
    gy = ys / hin * 2 - 1
    gx = xs / win * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing='ij')[::-1], -1)
    canon = F.grid_sample(
        maps[None].float(), grid[None], mode='bilinear',
        padding_mode='border', align_corners=False)[0]
    valid = valid_y[:, None] & valid_x[None, :]
    return canon, valid


def from_canonical(canon: torch.Tensor, meta: dict,
                   mode: str = 'bilinear') -> torch.Tensor:
    """Warp maps from an image's canonical frame into an augmented view of it.

    The inverse of :func:`to_canonical`: ``canon`` (K, Hc, Wc) covers the original
    image (at any resolution); the result (K, img_h, img_w) covers the augmented,
    unpadded image described by ``meta`` (pipeline order resize -> crop -> flip, as
    recorded by mmcv's ``Resize`` (``scale_factor``), :class:`RandomCropWithBox`
    (``crop_bbox``) and ``RandomFlip`` (``flip``, ``flip_direction``)).

    Used to bring per-image state kept by image id (OAA's previous attention for the
    attention drop layer, IAM soft targets) onto the pixels the network sees.

    Args:
        canon: (K, Hc, Wc) maps of the original image.
        meta: ``ori_shape``, ``img_shape`` and the optional geometric keys above.
        mode: interpolation mode for the resize to the resized-image size.
    """
    if canon.dim() != 3:
        raise ValueError(f'canon must be (K, H, W), got {tuple(canon.shape)}')
    ori_h, ori_w = meta['ori_shape'][:2]
    img_h, img_w = meta.get('img_shape', (ori_h, ori_w))[:2]
    sf = meta.get('scale_factor', (1.0, 1.0))
    res_h, res_w = int(ori_h * sf[1] + 0.5), int(ori_w * sf[0] + 0.5)
    kw = {} if mode in ('nearest', 'area') else dict(align_corners=False)
    x = F.interpolate(canon[None].float(), size=(res_h, res_w), mode=mode,
                      **kw)[0]
    y1, y2, x1, x2 = meta.get('crop_bbox', (0, img_h, 0, img_w))
    x = x[:, y1:y2, x1:x2]
    if meta.get('flip', False):
        x = x.flip(-1 if meta.get('flip_direction', 'horizontal') ==
                   'horizontal' else -2)
    if tuple(x.shape[1:]) != (img_h, img_w):
        # e.g. a crop box that ends past the resized image: pad with zeros
        out = x.new_zeros((x.shape[0], img_h, img_w))
        h, w = min(img_h, x.shape[1]), min(img_w, x.shape[2])
        out[:, :h, :w] = x[:, :h, :w]
        x = out
    return x
