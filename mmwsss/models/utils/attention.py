"""Scaled dot-product self-attention with dropout on the attention probabilities,
computed in blocks of queries on the CPU.

``softmax(Q K^T / sqrt(d)) -> dropout -> x V`` is what EDAM's class-specific
Transformer blocks compute (Wu et al., CVPR 2021, Eq. 4, with the BERT block of the
official code: dropout 0.1 on the attention probabilities). On a GPU PyTorch's fused
kernels (``F.scaled_dot_product_attention``) apply that dropout without ever
holding the T x T attention matrix. On a CPU the fused (flash) kernel takes no
dropout, and PyTorch falls back to explicit matrix products: the T x T weights,
their random mask and the dropped weights are written out in full and saved for the
backward pass (EDAM's VOC setting, 2 x 2116 tokens, 20 classes x 2 heads: about
3 GB per copy, 10 GB of saved activations for one image pair), and every
element-wise pass over them runs at memory speed.

:func:`blocked_dropout_attention` computes the same function block by block (the
FlashAttention recurrence; Dao et al., NeurIPS 2022, Alg. 1 / 2 without the online
softmax, a block holds all keys): for each block of queries the scores, the softmax
and the dropped weights stay in a block-sized buffer; the backward pass recomputes
the probabilities from the saved log-sum-exp. Saved for the backward pass: Q, K, V,
the output, the log-sum-exp and the dropout masks as booleans (1 byte per weight
instead of 3 x 4 bytes). The result is the same distribution as
``F.scaled_dot_product_attention(q, k, v, dropout_p=p)`` (each weight kept with
probability 1 - p and scaled by 1 / (1 - p)); the random numbers are drawn in
another order, so the two do not agree sample by sample.
"""
import math
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

# bytes of one block's (batch, queries, keys) float buffer: a few of them fit the
# caches of a CPU, so the element-wise passes over a block run from the cache
DEFAULT_BLOCK_BYTES = 8 * 2**20

MaskFn = Callable[[Tuple[int, ...], Tuple[int, int]], torch.Tensor]


def quantized_dropout_p(p: float) -> float:
    """The drop probability :func:`blocked_dropout_attention` realises: ``p``
    rounded to a multiple of 2^-16 (each weight is dropped when a uniform 16-bit
    random number is below ``round(p * 2^16)``)."""
    return round(float(p) * 65536) / 65536


def _random_drop(p: float) -> MaskFn:
    """Boolean drop masks, each entry True with probability
    :func:`quantized_dropout_p` ``(p)``, from PyTorch's default generator.

    Four 16-bit fields of each full-range 64-bit random integer are four draws:
    a quarter of the generator calls of ``bernoulli_`` / ``torch.rand`` (which
    make one float per entry), about 4x faster on a CPU, where the generator
    runs on one thread."""
    threshold = -32768 + round(float(p) * 65536)

    def drop(shape, start):
        n = math.prod(shape)
        bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2**63, None)
        return bits.view(torch.int16)[:n].view(shape) < threshold

    return drop


def _blocks(b: int, t: int, rows: int):
    """(b0, b1, s, e): ``rows`` (batch entry, query) rows per block, whole batch
    entries when a block holds more than T rows."""
    if rows >= t:
        per = rows // t
        return [(i, min(i + per, b), 0, t) for i in range(0, b, per)]
    return [(i, i + 1, s, min(s + rows, t)) for i in range(b)
            for s in range(0, t, rows)]


class _BlockedDropoutAttention(torch.autograd.Function):
    """(B, T, D) q, k, v -> (B, T, D); see :func:`blocked_dropout_attention`."""

    @staticmethod
    def forward(ctx, q, k, v, p, rows, mask_fn):
        b, t, d = q.shape
        scale = 1.0 / math.sqrt(d)
        qs = q * scale
        kt = k.transpose(1, 2)
        out = torch.empty_like(q)
        lse = q.new_empty(b, t, 1)
        masks = []
        blocks = _blocks(b, t, rows)
        for b0, b1, s, e in blocks:
            w = torch.matmul(qs[b0:b1, s:e], kt[b0:b1])  # scores (b, c, T)
            m = w.amax(-1, keepdim=True)
            w.sub_(m).exp_()
            norm = w.sum(-1, keepdim=True)
            w.mul_(norm.reciprocal())  # the softmax
            lse[b0:b1, s:e] = m + norm.log()  # the backward pass: exp(S - lse)
            if p > 0:
                drop = mask_fn(tuple(w.shape), (b0, s))
                w.masked_fill_(drop, 0.0)
                masks.append(drop)
            out[b0:b1, s:e] = torch.matmul(w, v[b0:b1])
        if p > 0:
            out.mul_(1.0 / (1.0 - p))  # (P o Z) V / (1 - p)
        ctx.p, ctx.blocks, ctx.scale = p, blocks, scale
        # the masks go through save_for_backward too, so that saved-tensor hooks
        # (offloading, memory accounting) see them
        ctx.save_for_backward(q, k, v, out, lse, *masks)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, k, v, out, lse, *masks = ctx.saved_tensors
        p, scale = ctx.p, ctx.scale
        qs = q * scale
        kt = k.transpose(1, 2)
        vt = v.transpose(1, 2)
        # sum_j P_ij dP_ij = dO_i . O_i (also with dropout: O = (P o Z') V)
        delta = (grad_out * out).sum(-1, keepdim=True)
        # the 1 / (1 - p) of the kept weights, on the (T, D) side
        go_all = grad_out * (1.0 / (1.0 - p)) if p > 0 else grad_out
        dq = torch.empty_like(q)
        dk = torch.zeros_like(k)
        dv = torch.zeros_like(v)
        for i, (b0, b1, s, e) in enumerate(ctx.blocks):
            prob = torch.matmul(qs[b0:b1, s:e], kt[b0:b1])
            prob.sub_(lse[b0:b1, s:e]).exp_()
            go = go_all[b0:b1, s:e]
            dprob = torch.matmul(go, vt[b0:b1])  # d(dropped weights) / Z'
            # softmax backward: dS = P o (dP o Z' - delta)
            #                      = (P o Z') o dP - P o delta
            kept = prob.masked_fill(masks[i], 0.0) if p > 0 else prob
            dv[b0:b1].baddbmm_(kept.transpose(1, 2), go)
            dscore = dprob.mul_(kept).sub_(prob.mul_(delta[b0:b1, s:e]))
            del prob, kept
            dq[b0:b1, s:e] = torch.matmul(dscore, k[b0:b1]).mul_(scale)
            dk[b0:b1].baddbmm_(dscore.transpose(1, 2), qs[b0:b1, s:e])
        return dq, dk, dv, None, None, None


def blocked_dropout_attention(q: torch.Tensor,
                              k: torch.Tensor,
                              v: torch.Tensor,
                              dropout_p: float = 0.0,
                              block_rows: Optional[int] = None,
                              mask_fn: Optional[MaskFn] = None) -> torch.Tensor:
    """``dropout(softmax(q k^T / sqrt(d))) v`` over the last two dimensions, the
    attention matrix computed one block of queries at a time (see the module
    docstring). No attention mask, no causal mask.

    Args:
        q, k, v (Tensor): (..., T, d) queries, keys and values (the leading
            dimensions are batch dimensions; k and v have the same T).
        dropout_p (float): probability of dropping an attention weight (the
            kept ones are scaled by 1 / (1 - p)), as ``dropout_p`` of
            ``F.scaled_dot_product_attention``, rounded to a multiple of 2^-16
            (:func:`quantized_dropout_p`; 0.1 -> 0.100006). Pass 0 outside
            training.
        block_rows (int, optional): (batch entry, query) rows per block: a
            block is ``block_rows`` queries of one batch entry, or whole batch
            entries when ``block_rows`` >= T; default: as many rows as fit
            ``DEFAULT_BLOCK_BYTES`` of float32 scores.
        mask_fn (callable, optional): ``mask_fn(shape, (first_entry,
            first_query))`` returns the boolean drop mask of one block (shape
            (b, c, T)); default:
            independent draws with probability ``quantized_dropout_p(p)`` from
            PyTorch's default generator. For tests (the scaling then uses
            ``dropout_p`` as given).

    Returns:
        Tensor: (..., T, d).
    """
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f'dropout_p must be in [0, 1), got {dropout_p}')
    if q.shape[:-2] != k.shape[:-2] or k.shape != v.shape[:-1] + k.shape[-1:]:
        raise ValueError('blocked_dropout_attention: q (..., T, d), k and v '
                         f'(..., T, d) expected, got {tuple(q.shape)}, '
                         f'{tuple(k.shape)}, {tuple(v.shape)}')
    lead = q.shape[:-2]
    t, d = q.shape[-2:]
    q3 = q.reshape(-1, t, d)
    k3 = k.reshape(-1, k.shape[-2], d)
    v3 = v.reshape(-1, v.shape[-2], v.shape[-1])
    if block_rows is None:
        block_rows = DEFAULT_BLOCK_BYTES // (4 * k3.shape[1])
    block_rows = int(max(1, block_rows))
    p = float(dropout_p)
    if mask_fn is None:
        mask_fn = _random_drop(p)
        p = quantized_dropout_p(p)
    out = _BlockedDropoutAttention.apply(q3, k3, v3, p, block_rows, mask_fn)
    return out.reshape(*lead, t, v.shape[-1])


def dropout_attention(q: torch.Tensor,
                      k: torch.Tensor,
                      v: torch.Tensor,
                      dropout_p: float = 0.0,
                      impl: str = 'auto') -> torch.Tensor:
    """Self-attention with dropout on the attention probabilities, choosing the
    implementation:

    * ``'sdpa'``: ``F.scaled_dot_product_attention`` (fused kernels on a GPU,
      and on a CPU when ``dropout_p`` is 0);
    * ``'blocked'``: :func:`blocked_dropout_attention`;
    * ``'auto'`` (default): ``'blocked'`` for a CPU tensor with ``dropout_p > 0``
      (where PyTorch would materialise the full attention matrix), ``'sdpa'``
      otherwise.
    """
    if impl not in ('auto', 'sdpa', 'blocked'):
        raise ValueError("attention impl must be 'auto', 'sdpa' or 'blocked', "
                         f'got {impl!r}')
    if impl == 'auto':
        impl = ('blocked' if dropout_p > 0 and q.device.type == 'cpu' else
                'sdpa')
    if impl == 'blocked':
        return blocked_dropout_attention(q, k, v, dropout_p)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
