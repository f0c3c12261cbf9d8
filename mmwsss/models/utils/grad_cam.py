"""Grad-CAM inside the training graph, and the soft mask of GAIN.

Li et al., "Tell Me Where to Look: Guided Attention Inference Network", CVPR 2018
(TPAMI 2020), §3.1:

* Eq. 1: ``w^c_k = GAP(ds^c / df_k)``, the spatial mean of the gradient of the class
  score ``s^c`` (here the logit, before the sigmoid, as in Grad-CAM) with respect to
  channel ``k`` of the feature map ``f`` of the last convolutional layer;
* Eq. 2: ``A^c = ReLU(sum_k w^c_k f_k)``, a 1x1 convolution of ``f`` with kernel
  ``w^c`` followed by a ReLU;
* Eq. 4: the soft mask ``T(A) = sigmoid(omega (A - sigma))``; the masked image of
  Eq. 3 is made with :func:`~mmwsss.models.utils.erase_inputs`.

:func:`grad_cam` computes Eqs. 1-2 with ``torch.autograd.grad`` (never ``.backward``
plus hooks): the gradients are taken from the logits back to ``f`` only, nothing is
written into any parameter's ``.grad``, and with ``create_graph=True`` the weights
``w^c`` stay differentiable (double backpropagation). For a head whose image logits
are the global average of a 1x1 convolution of ``f`` (the CAM head), Grad-CAM has a
closed form, :func:`gap_linear_grad_cam`: ``A^c = ReLU(W_c . f) / (h w)``.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

Pairs = Union[torch.Tensor, Sequence[torch.Tensor]]


def _as_pairs(pairs: Pairs, n: int, k: int,
              device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(image indices, class indices) of ``pairs``: a (P, 2) integer tensor or two
    (P,) index tensors."""
    if isinstance(pairs, torch.Tensor):
        if pairs.dim() != 2 or pairs.shape[1] != 2:
            raise ValueError('pairs must be a (P, 2) tensor of (image, class) '
                             f'indices, got shape {tuple(pairs.shape)}')
        b, c = pairs[:, 0], pairs[:, 1]
    else:
        if len(pairs) != 2:
            raise ValueError('pairs must be a (P, 2) tensor or two index '
                             f'tensors (images, classes), got {len(pairs)}')
        b, c = (torch.as_tensor(t) for t in pairs)
        if b.shape != c.shape or b.dim() != 1:
            raise ValueError('the image and class index tensors must both have '
                             f'shape (P,), got {tuple(b.shape)} and '
                             f'{tuple(c.shape)}')
    if b.is_floating_point() or c.is_floating_point():
        raise ValueError('pairs must hold integer indices')
    b, c = b.long().to(device), c.long().to(device)
    if b.numel() and (b.min() < 0 or b.max() >= n or c.min() < 0
                      or c.max() >= k):
        raise ValueError(f'pair indices out of range: {n} images, {k} classes')
    return b, c


def _slots(b: torch.Tensor, n: int) -> Tuple[torch.Tensor, int]:
    """For each pair the rank of the pair among the pairs of its image, and the
    largest number of pairs of one image."""
    counts = torch.bincount(b, minlength=n)
    order = torch.argsort(b, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(b)
    slot[order] = torch.arange(b.numel(), device=b.device) - starts[b[order]]
    return slot, int(counts.max())


def grad_cam(feats: torch.Tensor,
             logits: torch.Tensor,
             pairs: Pairs,
             create_graph: bool = False,
             pack_images: bool = False) -> torch.Tensor:
    """Grad-CAM maps of (image, class) pairs (GAIN Eqs. 1-2).

    ``A^c_b = ReLU(sum_k w_k f_{b,k})`` with ``w = GAP(ds^c_b / df_b)``, where
    ``s = logits`` (the scores before the sigmoid). All pairs are done in one
    ``torch.autograd.grad(logits, feats, grad_outputs=..., is_grads_batched=True,
    retain_graph=True)`` call; no ``.grad`` attribute is touched, so the call is safe
    inside the forward pass of a training step (gradient accumulation, DDP).

    Args:
        feats (Tensor): (N, C, h, w) feature map ``f`` (requires grad; the logits
            must depend on it).
        logits (Tensor): (N, K) class scores computed from ``feats``.
        pairs: a (P, 2) integer tensor of (image, class) indices, or two (P,)
            index tensors (images, classes). P may be 0.
        create_graph (bool): keep the graph of the gradients, so that ``w^c`` is
            differentiable (second order). False: ``w^c`` is a constant kernel and
            the maps are differentiable with respect to ``feats`` only.
        pack_images (bool): False (exact for any head): one row of the batched
            backward per pair, memory P x ``feats``. True: pairs of different images
            share a row (memory: the largest number of pairs of one image x
            ``feats``); valid only when the images of the batch do not interact
            in the head (no batch statistics, e.g. no train-mode batch norm).

    Returns:
        Tensor: (P, 1, h, w) non-negative maps, in the order of ``pairs``.
    """
    if feats.dim() != 4:
        raise ValueError('grad_cam: feats must be (N, C, h, w), got shape '
                         f'{tuple(feats.shape)}')
    if logits.dim() != 2 or logits.shape[0] != feats.shape[0]:
        raise ValueError(f'grad_cam: logits must be (N, K) with N = '
                         f'{feats.shape[0]}, got shape {tuple(logits.shape)}')
    n, _, h, w = feats.shape
    b, c = _as_pairs(pairs, n, logits.shape[1], feats.device)
    p = b.numel()
    if p == 0:
        return feats.new_zeros((0, 1, h, w))
    if not feats.requires_grad:
        raise ValueError('grad_cam: feats does not require grad (compute the '
                         'logits from features that require grad, under '
                         'torch.enable_grad())')
    if pack_images:
        rows, num_rows = _slots(b, n)
    else:
        rows, num_rows = torch.arange(p, device=b.device), p
    go = logits.new_zeros((num_rows, ) + tuple(logits.shape))
    go[rows, b, c] = 1
    (grads, ) = torch.autograd.grad(
        logits, feats, grad_outputs=go, is_grads_batched=True,
        retain_graph=True, create_graph=create_graph)
    weights = grads[rows, b].mean(dim=(2, 3), keepdim=True)  # Eq. 1
    return F.relu((weights * feats[b]).sum(1, keepdim=True))  # Eq. 2


def gap_linear_grad_cam(feats: torch.Tensor,
                        weight: torch.Tensor,
                        pairs: Optional[Pairs] = None) -> torch.Tensor:
    """Grad-CAM in closed form for logits ``s = GAP(W * f + b)`` (a 1x1 convolution
    or linear layer after global average pooling).

    Then ``ds^c / df_k(i, j) = W_{c,k} / (h w)`` at every location, so Eq. 1 gives
    ``w^c = W_c / (h w)`` and Eq. 2 ``A^c = ReLU(W_c . f) / (h w)``, i.e. the CAM
    without the bias divided by ``h w``. Differentiable in ``feats`` and ``weight``
    (pass ``weight.detach()`` for a constant kernel, as :func:`grad_cam` with
    ``create_graph=False``).

    Args:
        feats (Tensor): (N, C, h, w) input of the linear layer.
        weight (Tensor): (K, C) or (K, C, 1, 1) weight of the linear layer.
        pairs (optional): (image, class) pairs as for :func:`grad_cam`.

    Returns:
        Tensor: (P, 1, h, w) maps of the pairs, or (N, K, h, w) maps of every class
        when ``pairs`` is None.
    """
    if feats.dim() != 4:
        raise ValueError('gap_linear_grad_cam: feats must be (N, C, h, w), got '
                         f'shape {tuple(feats.shape)}')
    n, ch, h, w = feats.shape
    wt = weight.reshape(weight.shape[0], -1)
    if wt.shape[1] != ch:
        raise ValueError(f'gap_linear_grad_cam: weight has {wt.shape[1]} input '
                         f'channels, feats {ch}')
    if pairs is None:
        return F.relu(torch.einsum('nchw,kc->nkhw', feats, wt)) / (h * w)
    b, c = _as_pairs(pairs, n, wt.shape[0], feats.device)
    if b.numel() == 0:
        return feats.new_zeros((0, 1, h, w))
    a = torch.einsum('pchw,pc->phw', feats[b], wt[c])
    return F.relu(a)[:, None] / (h * w)


def minmax_normalize(maps: torch.Tensor,
                     valid: Optional[torch.Tensor] = None,
                     eps: float = 1e-5) -> torch.Tensor:
    """Per-map min-max normalisation ``(A - min A) / max(max A - min A, eps)``
    over the last two dimensions, differentiable.

    GAIN compares the attention with a fixed threshold (Eq. 4), so it must be on a
    fixed scale; the paper does not say how (min-max is the choice of the public
    re-implementations). The maximum is exactly 1 whenever the range exceeds
    ``eps`` (Grad-CAM of a GAP head is ``CAM / (h w)``, so ranges are small; the
    result does not depend on the maps' scale); a map with a smaller range is
    divided by ``eps`` (a constant map gives 0, no NaN).

    Args:
        maps (Tensor): (..., H, W) maps.
        valid (Tensor, optional): bool mask broadcastable to ``maps`` (e.g. an
            image's unpadded area): min and max are taken over the valid pixels
            only and the result is 0 elsewhere; a map without valid pixels is 0.
        eps (float): the smallest range divided by.
    """
    if valid is None:
        lo = maps.amin(dim=(-2, -1), keepdim=True)
        hi = maps.amax(dim=(-2, -1), keepdim=True)
        return (maps - lo) / (hi - lo).clamp_min(eps)
    v = valid.to(device=maps.device, dtype=torch.bool).expand_as(maps)
    inf = torch.finfo(maps.dtype).max
    lo = torch.where(v, maps, maps.new_tensor(inf)).amin(dim=(-2, -1),
                                                         keepdim=True)
    hi = torch.where(v, maps, maps.new_tensor(-inf)).amax(dim=(-2, -1),
                                                          keepdim=True)
    any_valid = v.any(dim=-1, keepdim=True).any(dim=-2, keepdim=True)
    lo = torch.where(any_valid, lo, torch.zeros_like(lo))
    hi = torch.where(any_valid, hi, torch.zeros_like(hi))
    out = (maps - lo) / (hi - lo).clamp_min(eps)
    return torch.where(v, out, torch.zeros_like(out))


def soft_mask(maps: torch.Tensor, sigma: float = 0.5,
              omega: float = 10.0) -> torch.Tensor:
    """GAIN's differentiable threshold ``T(A) = 1 / (1 + exp(-omega (A - sigma)))``
    (Eq. 4): ``T(sigma) = 0.5``, ``T`` is strictly increasing in ``A`` and in
    (0, 1). The paper gives no values for ``sigma`` and ``omega``; 0.5 and 10 are
    those of most public re-implementations (``T(0) = 0.0067``, ``T(1) = 0.9933``).
    """
    return torch.sigmoid(omega * (maps - sigma))
