"""K independent pre-LN Transformer encoder layers run as one batched layer (EDAM's
class-specific self-attention blocks; docs/methods/edam.md)."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.models.utils.attention import dropout_attention


def _xavier_uniform_stack(weight: torch.Tensor) -> None:
    """Xavier-uniform init of every (fan_in, fan_out) slice of a (K, in, out)
    weight, as ``nn.init.xavier_uniform_`` of each class's ``nn.Linear``."""
    fan_in, fan_out = weight.shape[-2], weight.shape[-1]
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -bound, bound)


def _linear_bias_init(bias: torch.Tensor, fan_in: int) -> None:
    """PyTorch's default ``nn.Linear`` bias init."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(bias, -bound, bound)


class ClassWiseTransformerLayer(nn.Module):
    """``num_blocks`` pre-LN Transformer encoder layers with unshared weights, one
    per class, computed together (the weights are stacked on a leading class axis).

    Block ``k`` maps its tokens ``Z`` (T, d) to

    ``U = Z + Drop(MHA_k(LN1_k(Z)))``, ``V = U + Drop(FFN_k(LN2_k(U)))``,
    output ``Drop(V)``,

    with ``MHA`` multi-head scaled dot-product self-attention (Q / K / V / output
    projections with biases, dropout on the attention probabilities, no mask) and
    ``FFN = Linear(d, f) -> GELU -> Drop -> Linear(f, d)``: the BERT-style block of
    the official EDAM code (allenwu97/EDAM ``network/transformer.py``), which the
    paper calls ``SelfAttention_k`` (Eq. 4). No output layer norm. Stacking the
    weights gives the same result as K separate blocks (each class's tokens only
    meet its own slice of every weight, so its gradient reaches only that slice)
    and one batched kernel instead of a loop over classes.

    Args:
        num_blocks (int): K, the classes.
        embed_dims (int): d.
        num_heads (int): attention heads (official code: 2).
        ffn_channels (int): hidden width of the FFN (official code: 4 d).
        dropout (float): dropout of the two sublayer outputs, the FFN's hidden
            layer and the block's output (official code: 0.1).
        attn_drop (float, optional): dropout of the attention probabilities
            (official code: the same 0.1; None = ``dropout``). On a CPU it is the
            dearest part of a small block (a random number per attention weight:
            B h w x B h w per class and head).
        layer_norm (str): ``'bert'`` (the official code's
            ``a (x - mean) / (std + eps) + b`` with the unbiased std) or
            ``'torch'`` (``nn.LayerNorm``: biased variance, eps inside the root).
        norm_eps (float): the layer norms' epsilon (official code: 1e-6).
        gelu_approximate (str): ``'tanh'`` (the official code's GELU) or
            ``'none'`` (the exact erf form).
        attn_impl (str): how the attention is computed
            (:func:`mmwsss.models.utils.attention.dropout_attention`):
            ``'auto'`` (default: PyTorch's fused ``scaled_dot_product_attention``,
            except on a CPU with dropout on the probabilities, where it is
            computed in blocks of queries, without the full attention matrix),
            ``'sdpa'`` or ``'blocked'``. The same function either way; the
            dropout masks are drawn differently.
    """

    def __init__(self,
                 num_blocks: int,
                 embed_dims: int,
                 num_heads: int = 2,
                 ffn_channels: int = 512,
                 dropout: float = 0.1,
                 attn_drop: Optional[float] = None,
                 layer_norm: str = 'bert',
                 norm_eps: float = 1e-6,
                 gelu_approximate: str = 'tanh',
                 attn_impl: str = 'auto'):
        super().__init__()
        if attn_impl not in ('auto', 'sdpa', 'blocked'):
            raise ValueError("attn_impl must be 'auto', 'sdpa' or 'blocked', "
                             f'got {attn_impl!r}')
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by '
                             f'num_heads ({num_heads})')
        if layer_norm not in ('bert', 'torch'):
            raise ValueError("layer_norm must be 'bert' or 'torch', got "
                             f'{layer_norm!r}')
        if gelu_approximate not in ('tanh', 'none'):
            raise ValueError("gelu_approximate must be 'tanh' or 'none'")
        k, d, f = int(num_blocks), int(embed_dims), int(ffn_channels)
        self.num_blocks, self.embed_dims, self.num_heads = k, d, int(num_heads)
        self.ffn_channels = f
        self.dropout = float(dropout)
        self.attn_drop = self.dropout if attn_drop is None else float(attn_drop)
        self.layer_norm = layer_norm
        self.norm_eps = float(norm_eps)
        self.gelu_approximate = gelu_approximate
        self.attn_impl = attn_impl
        self.norm1_weight = nn.Parameter(torch.ones(k, d))
        self.norm1_bias = nn.Parameter(torch.zeros(k, d))
        self.qkv_weight = nn.Parameter(torch.empty(k, d, 3 * d))
        self.qkv_bias = nn.Parameter(torch.empty(k, 3 * d))
        self.proj_weight = nn.Parameter(torch.empty(k, d, d))
        self.proj_bias = nn.Parameter(torch.empty(k, d))
        self.norm2_weight = nn.Parameter(torch.ones(k, d))
        self.norm2_bias = nn.Parameter(torch.zeros(k, d))
        self.fc1_weight = nn.Parameter(torch.empty(k, d, f))
        self.fc1_bias = nn.Parameter(torch.empty(k, f))
        self.fc2_weight = nn.Parameter(torch.empty(k, f, d))
        self.fc2_bias = nn.Parameter(torch.empty(k, d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official code: Xavier-uniform for every weight with more than one
        dimension (Q, K, V, output and FFN weights, each class separately),
        PyTorch's default ``Linear`` biases, layer norms 1 / 0."""
        d, f = self.embed_dims, self.ffn_channels
        # Q, K and V are three d x d Linear layers in the official code: initialise
        # each d x d slice on its own
        qkv = self.qkv_weight.data.view(self.num_blocks, d, 3, d)
        for i in range(3):
            _xavier_uniform_stack(qkv[:, :, i])
        _xavier_uniform_stack(self.proj_weight.data)
        _xavier_uniform_stack(self.fc1_weight.data)
        _xavier_uniform_stack(self.fc2_weight.data)
        _linear_bias_init(self.qkv_bias.data, d)
        _linear_bias_init(self.proj_bias.data, d)
        _linear_bias_init(self.fc1_bias.data, d)
        _linear_bias_init(self.fc2_bias.data, f)
        nn.init.ones_(self.norm1_weight)
        nn.init.zeros_(self.norm1_bias)
        nn.init.ones_(self.norm2_weight)
        nn.init.zeros_(self.norm2_bias)

    def _norm(self, x: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor) -> torch.Tensor:
        # x: (G, K, T, d); weight / bias: (K, d)
        if self.layer_norm == 'torch':
            x = F.layer_norm(x, x.shape[-1:], eps=self.norm_eps)
        else:
            mean = x.mean(-1, keepdim=True)
            std = x.std(-1, keepdim=True)  # unbiased, as torch.Tensor.std
            x = (x - mean) / (std + self.norm_eps)
        return x * weight[:, None] + bias[:, None]

    @staticmethod
    def _linear(x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
        # (G, K, T, i) x (K, i, o) -> (G, K, T, o)
        return torch.einsum('gkti,kio->gkto', x, weight) + bias[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(G, K, T, d) tokens of G groups and K classes -> the same shape; the
        tokens of one (group, class) attend only to each other."""
        g, k, t, d = x.shape
        if k != self.num_blocks or d != self.embed_dims:
            raise ValueError(
                f'ClassWiseTransformerLayer: expected (G, {self.num_blocks}, T, '
                f'{self.embed_dims}) tokens, got {tuple(x.shape)}')
        p = self.dropout if self.training else 0.0
        h = self.num_heads
        y = self._norm(x, self.norm1_weight, self.norm1_bias)
        qkv = self._linear(y, self.qkv_weight, self.qkv_bias)
        # (G, K, T, 3, h, dk) -> 3 x (G*K, h, T, dk)
        qkv = qkv.reshape(g * k, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        att = dropout_attention(
            qkv[0], qkv[1], qkv[2],
            dropout_p=self.attn_drop if self.training else 0.0,
            impl=self.attn_impl)
        att = att.transpose(1, 2).reshape(g, k, t, d)
        att = self._linear(att, self.proj_weight, self.proj_bias)
        x = x + F.dropout(att, p, self.training)
        y = self._norm(x, self.norm2_weight, self.norm2_bias)
        y = self._linear(y, self.fc1_weight, self.fc1_bias)
        y = F.gelu(y, approximate=self.gelu_approximate)
        y = F.dropout(y, p, self.training)
        y = self._linear(y, self.fc2_weight, self.fc2_bias)
        x = x + F.dropout(y, p, self.training)
        # the official block ends with a dropout of its output
        return F.dropout(x, p, self.training)

    def extra_repr(self) -> str:
        return (f'num_blocks={self.num_blocks}, embed_dims={self.embed_dims}, '
                f'num_heads={self.num_heads}, ffn_channels={self.ffn_channels}, '
                f'dropout={self.dropout}, attn_drop={self.attn_drop}, '
                f'layer_norm={self.layer_norm!r}')
