"""The hybrid loss of the integral attention model (OAA+; [T] §3.4, Eqs. 7-9).

[T] = Jiang et al., "Online Attention Accumulation for Weakly Supervised Semantic
Segmentation", TPAMI 2021; [I] = the ICCV 2019 paper; [C] = the official code
(PengtaoJiang/OAA-PyTorch). References: docs/methods/oaa.md, section 'References'.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.registry import MODELS

HYBRID_REDUCTIONS = ('per_class', 'global')


def _check_inputs(logits: torch.Tensor, targets: torch.Tensor,
                  valid: Optional[torch.Tensor]) -> None:
    if logits.dim() != 4:
        raise ValueError('hybrid_attention_loss: logits must be (N, K, h, w), '
                         f'got shape {tuple(logits.shape)}')
    if tuple(targets.shape) != tuple(logits.shape):
        raise ValueError(
            f'hybrid_attention_loss: targets {tuple(targets.shape)} must have '
            f'the shape of the logits {tuple(logits.shape)} (resize the soft '
            'targets to the score map first)')
    if valid is not None:
        n, _, h, w = logits.shape
        if tuple(valid.shape) != (n, h, w):
            raise ValueError(
                f'hybrid_attention_loss: valid must be (N, h, w) = '
                f'{(n, h, w)}, got {tuple(valid.shape)}')
        if valid.dtype != torch.bool:
            raise ValueError('hybrid_attention_loss: valid must be a bool '
                             f'tensor, got {valid.dtype}')


def hybrid_attention_loss(logits: torch.Tensor,
                          targets: torch.Tensor,
                          valid: Optional[torch.Tensor] = None,
                          reduction: str = 'per_class',
                          pos_threshold: float = 0.0,
                          zero_tol: float = 1e-3) -> torch.Tensor:
    """Hybrid loss of the integral attention model ([T] Eqs. 7-9).

    With ``q = sigmoid(logits)`` and soft targets ``p`` in [0, 1], the pixels of each
    class are split into the *enhance* region ``N+ = {p > max(pos_threshold,
    zero_tol)}`` and the *constraint* region ``N-`` (the other valid pixels):

    - enhance loss (Eq. 7): ``L+ = -1/|N+| sum_{N+} p log q``;
    - constraint loss (Eq. 8, [T] form): ``L- = -1/|N-| sum_{N-} log(1 - q)``.

    The constraint term has **no** ``p`` factor: the ICCV version ([I] Eq. 8) has a
    spurious ``p`` inside the sum, which makes ``L-`` identically 0 on ``N-`` (where
    ``p = 0``); that typo is deliberately not reproduced.

    ``zero_tol`` (default 1e-3, as [C]'s ``target > 0.001``) makes ``pos_threshold=0``
    mean "p > 0" for 1/255-quantised targets ([T] Tab. 5: tau = 0 is best).
    ``log q`` and ``log(1 - q)`` are computed as ``logsigmoid(x)`` and
    ``logsigmoid(-x)`` for numerical stability.

    Reductions:

    - ``'per_class'`` (the paper, Eq. 9): per image ``n`` and class ``c`` the two
      means above (a term with an empty set is 0), ``L_n = sum_c (L+ + L-)``; the loss
      is the mean of ``L_n`` over the images. Classes absent from an image have
      all-zero targets, so all their pixels are in ``N-``.
    - ``'global'`` ([C]'s ``ExLoss``): the positive and negative sets are pooled over
      all classes, pixels and images:
      ``L = sum_pos(-p log q) / |pos| + sum_neg(-log(1 - q)) / |neg|`` (an empty set
      gives a 0 term).

    Args:
        logits: (N, K, h, w) class score map ``F`` (before the sigmoid).
        targets: (N, K, h, w) soft targets ``p`` in [0, 1] (no gradient).
        valid: optional (N, h, w) bool mask; pixels outside it (e.g. padding) are
            ignored entirely (in neither set).
        reduction: ``'per_class'`` or ``'global'``.
        pos_threshold: the split threshold tau of [T] Tab. 5.
        zero_tol: the smallest threshold actually used.

    Returns:
        The scalar loss (float32).
    """
    if reduction not in HYBRID_REDUCTIONS:
        raise ValueError(f'reduction must be one of {HYBRID_REDUCTIONS}, got '
                         f'{reduction!r}')
    _check_inputs(logits, targets, valid)
    x = logits.float()
    p = targets.detach().to(device=x.device, dtype=x.dtype)
    thr = max(float(pos_threshold), float(zero_tol))
    pos = p > thr
    if valid is None:
        neg = ~pos
    else:
        v = valid.to(x.device)[:, None]
        pos = pos & v
        neg = ~pos & v
    pos_f, neg_f = pos.to(x.dtype), neg.to(x.dtype)
    # -p log q on N+ and -log(1 - q) on N- (no p factor: [T] Eq. 8, not [I]'s typo)
    pos_term = -(p * F.logsigmoid(x)) * pos_f
    neg_term = -F.logsigmoid(-x) * neg_f
    if reduction == 'global':
        loss = pos_term.sum() / pos_f.sum().clamp(min=1) + \
            neg_term.sum() / neg_f.sum().clamp(min=1)
        return loss
    # per image and class means (an empty set gives sum 0 / 1 = 0)
    l_pos = pos_term.sum((2, 3)) / pos_f.sum((2, 3)).clamp(min=1)
    l_neg = neg_term.sum((2, 3)) / neg_f.sum((2, 3)).clamp(min=1)
    return (l_pos + l_neg).sum(1).mean()


@MODELS.register_module()
class HybridAttentionLoss(nn.Module):
    """Hybrid loss of OAA+'s integral attention model ([T] §3.4, Eqs. 7-9).

    ``L = sum_c (L^c_+ + L^c_-)`` with the enhance loss
    ``L^c_+ = -1/|N^c_+| sum_{N^c_+} p log q`` (Eq. 7, the soft target ``p`` instead
    of 1, because cumulative maps contain non-target pixels) and the constraint loss
    ``L^c_- = -1/|N^c_-| sum_{N^c_-} log(1 - q)`` (Eq. 8 in [T]'s form: without the
    spurious ``p`` factor of the ICCV paper's Eq. 8, which would make it 0). Unlike
    the plain cross-entropy (Eq. 6), whose optimum at a pixel is ``q = p``, the
    enhance term pushes every ``p > 0`` pixel toward ``q = 1``, so weak parts of the
    cumulative maps are not pushed toward background. See
    :func:`hybrid_attention_loss` for the definitions and the reductions.

    Args:
        reduction (str): ``'per_class'`` (the paper: per-class means summed over the
            classes, mean over images; default) or ``'global'`` (the official code's
            ``ExLoss``: one positive and one negative mean pooled over classes,
            pixels and the batch).
        pos_threshold (float): split threshold tau, ``N+ = {p > tau}`` ([T] Tab. 5;
            0 is best).
        zero_tol (float): lower bound of the threshold (the official code's 0.001),
            so that tau = 0 means ``p > 0`` for quantised targets.
        loss_weight (float): multiplies the loss.
        loss_name (str): key of the loss in the losses dict (MMSeg convention: the
            name starts with ``loss_`` so that it is summed into the total loss).
    """

    def __init__(self,
                 reduction: str = 'per_class',
                 pos_threshold: float = 0.0,
                 zero_tol: float = 1e-3,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_hybrid'):
        super().__init__()
        if reduction not in HYBRID_REDUCTIONS:
            raise ValueError(f'reduction must be one of {HYBRID_REDUCTIONS}, '
                             f'got {reduction!r}')
        if pos_threshold < 0 or zero_tol < 0:
            raise ValueError('pos_threshold and zero_tol must be >= 0')
        self.reduction = reduction
        self.pos_threshold = float(pos_threshold)
        self.zero_tol = float(zero_tol)
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self,
                logits: torch.Tensor,
                targets: torch.Tensor,
                valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Args: logits, targets (N, K, h, w); valid optional bool (N, h, w)."""
        return self.loss_weight * hybrid_attention_loss(
            logits,
            targets,
            valid=valid,
            reduction=self.reduction,
            pos_threshold=self.pos_threshold,
            zero_tol=self.zero_tol)

    def extra_repr(self) -> str:
        return (f'reduction={self.reduction!r}, pos_threshold='
                f'{self.pos_threshold}, zero_tol={self.zero_tol}, '
                f'loss_weight={self.loss_weight}, loss_name={self.loss_name!r}')
