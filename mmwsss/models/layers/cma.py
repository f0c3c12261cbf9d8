"""The collaborative multi-attention (CMA) module of EDAM.

Wu et al., "Embedded Discriminative Attention Mechanism for Weakly Supervised
Semantic Segmentation", CVPR 2021, §3.3 (docs/methods/edam.md).
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.registry import MODELS
from .class_wise_transformer_layer import ClassWiseTransformerLayer


def sinusoidal_positions(length: int, dims: int, device=None,
                         dtype=torch.float32) -> torch.Tensor:
    """(length, dims) fixed positional encoding ``PE[p, 2i] = sin(p w_i)``,
    ``PE[p, 2i + 1] = cos(p w_i)``, ``w_i = 10000^(-2i / dims)`` (Vaswani et al.,
    NeurIPS 2017, §3.5; the encoding of the official EDAM code, which builds it
    once for 46 x 46 positions; here it is made for the actual feature size)."""
    if dims % 2:
        raise ValueError(f'sinusoidal positions need even dims, got {dims}')
    pos = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    div = torch.exp(
        torch.arange(0, dims, 2, dtype=torch.float32, device=device) *
        (-math.log(10000.0) / dims))
    pe = torch.zeros(length, dims, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.to(dtype)


@MODELS.register_module()
class CollaborativeMultiAttention(nn.Module):
    """EDAM's collaborative multi-attention (Eqs. 3-4) over groups of images.

    Input: the class-specific feature maps ``X_n^k`` (N, K, d, h, w) of N images
    that form ``N / group_size`` consecutive groups (images sharing a class, the
    group sampler's batches). For each class ``k`` and group ``{1..B}``:

    1. tokens: ``X_n^k`` flattened row-major to (h w, d);
    2. embeddings: ``Z_n^k = T_n^k + PE + S[n]`` then dropout, ``PE`` the fixed
       sinusoidal encoding of the h w positions (the same for every image and
       class), ``S`` a learned segment embedding, row ``n`` for the n-th image of
       its group ("B positional vectors, each repeated H x W times", §3.3);
    3. the B h w tokens of the group go through class ``k``'s own Transformer
       encoder block (``SelfAttention_k`` of Eq. 4, :class:`ClassWiseTransformerLayer`):
       attention within each image and across the images of the group, never
       across groups;
    4. ``y_n^k = w_k^T GAP(A_n^k)``, a bias-free linear classifier per class
       (Eq. 3; the official code's 1x1 convolution).

    Every class is processed for every group (the official code: ``sample_num =
    20``), present or absent, so every parameter receives a gradient each step.
    ``num_layers=0`` is the "DA only" ablation (EDAM Table 5, row 2): no
    embeddings and no attention, ``y_n^k = w_k^T GAP(X_n^k)``.

    Args:
        num_classes (int): K.
        embed_dims (int): d (official code: 128).
        num_heads (int): attention heads (official code: 2).
        ffn_channels (int): FFN width (official code: 4 d = 512).
        num_layers (int): blocks per class (official code: 1).
        dropout (float): dropout of the embeddings and inside the blocks (0.1).
        attn_drop (float, optional): dropout of the attention probabilities
            (None: ``dropout``, as the official code).
        num_segments (int): rows of the segment embedding, the largest group it
            can embed (official code: ``nn.Embedding(5, d)``).
        layer_norm (str): ``'bert'`` (official) or ``'torch'``, see
            :class:`ClassWiseTransformerLayer`.
        norm_eps (float): layer-norm epsilon (official: 1e-6).
        gelu_approximate (str): ``'tanh'`` (official) or ``'none'``.
        positional_encoding (bool): add ``PE`` (default True).
        attn_impl (str): ``'auto'``, ``'sdpa'`` or ``'blocked'``, how the
            attention is computed (:class:`ClassWiseTransformerLayer`; the
            default uses the fused kernels, or on a CPU with attention dropout
            the blocked computation that never holds the full attention
            matrix).
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 128,
                 num_heads: int = 2,
                 ffn_channels: int = 512,
                 num_layers: int = 1,
                 dropout: float = 0.1,
                 attn_drop: Optional[float] = None,
                 num_segments: int = 5,
                 layer_norm: str = 'bert',
                 norm_eps: float = 1e-6,
                 gelu_approximate: str = 'tanh',
                 positional_encoding: bool = True,
                 attn_impl: str = 'auto'):
        super().__init__()
        if num_layers < 0:
            raise ValueError(f'num_layers must be >= 0, got {num_layers}')
        self.num_classes = int(num_classes)
        self.embed_dims = int(embed_dims)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.num_segments = int(num_segments)
        self.positional_encoding = bool(positional_encoding)
        if self.num_layers:
            self.segment_embed = nn.Embedding(num_segments, embed_dims)
            self.layers = nn.ModuleList([
                ClassWiseTransformerLayer(
                    num_classes, embed_dims, num_heads=num_heads,
                    ffn_channels=ffn_channels, dropout=dropout,
                    attn_drop=attn_drop,
                    layer_norm=layer_norm, norm_eps=norm_eps,
                    gelu_approximate=gelu_approximate,
                    attn_impl=attn_impl)
                for _ in range(num_layers)
            ])
        # K bias-free linear classifiers d -> 1 as one grouped convolution:
        # weight (K, d, 1), channel block k of the input meets only row k
        self.classifier = nn.Conv1d(
            num_classes * embed_dims, num_classes, 1, groups=num_classes,
            bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official code: Xavier-uniform segment embedding and classifiers (each
        class's 1x1 convolution d -> 1 on its own)."""
        if self.num_layers:
            nn.init.xavier_uniform_(self.segment_embed.weight)
        bound = math.sqrt(6.0 / (self.embed_dims + 1))
        nn.init.uniform_(self.classifier.weight, -bound, bound)

    def embed(self, tokens: torch.Tensor, group_size: int) -> torch.Tensor:
        """``T + PE + S[n mod B]`` of (N, K, h w, d) tokens, then dropout."""
        n, _, hw, d = tokens.shape
        if self.positional_encoding:
            tokens = tokens + sinusoidal_positions(
                hw, d, tokens.device, tokens.dtype)
        seg = torch.arange(n, device=tokens.device) % group_size
        tokens = tokens + self.segment_embed(seg)[:, None, None, :]
        return F.dropout(tokens, self.dropout, self.training)

    def forward(self, x: torch.Tensor, group_size: int) -> torch.Tensor:
        """Image logits (N, K) of class-specific maps (N, K, d, h, w) whose
        consecutive ``group_size`` images form a group."""
        n, k, d, h, w = x.shape
        if k != self.num_classes or d != self.embed_dims:
            raise ValueError(
                f'CollaborativeMultiAttention: expected (N, {self.num_classes}, '
                f'{self.embed_dims}, h, w) maps, got {tuple(x.shape)}')
        b = int(group_size)
        if b < 1 or n % b:
            raise ValueError(
                f'CollaborativeMultiAttention: {n} images do not form groups of '
                f'{b} (group_size): the batch size must be a multiple of the group '
                'size (train_dataloader.batch_size and the ClassGroupSampler)')
        if self.num_layers and b > self.num_segments:
            raise ValueError(
                f'group_size {b} exceeds num_segments {self.num_segments} (the '
                'rows of the segment embedding)')
        if self.num_layers:
            tokens = x.flatten(3).transpose(2, 3)  # (N, K, hw, d)
            tokens = self.embed(tokens, b)
            g = n // b
            # (G, B, K, hw, d) -> (G, K, B hw, d): one sequence per group and class
            seq = tokens.view(g, b, k, h * w, d).transpose(1, 2).reshape(
                g, k, b * h * w, d)
            for layer in self.layers:
                seq = layer(seq)
            pooled = seq.view(g, k, b, h * w, d).mean(3)  # (G, K, B, d)
            pooled = pooled.transpose(1, 2).reshape(n, k * d)
        else:
            pooled = x.mean((3, 4)).reshape(n, k * d)
        return self.classifier(pooled[:, :, None])[:, :, 0]

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, embed_dims={self.embed_dims}, '
                f'num_layers={self.num_layers}, num_segments={self.num_segments}')
