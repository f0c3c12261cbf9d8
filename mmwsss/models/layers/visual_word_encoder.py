"""Visual word assignment of VWL (Ru et al., "Weakly supervised semantic
segmentation by visual words learning and hybrid pooling", IJCV 2023, §3.3,
Eqs. 2-5).

A codebook ``C`` (K words x C channels) encodes every pixel of the feature map
``F`` (N, C, h, w) to its most cosine-similar word. The encoder does not own the
codebook: it is an argument of :meth:`VisualWordEncoder.forward`, so the learned
codebook (VWL-L, :class:`~mmwsss.models.layers.LearnedCodebook`) and the
memory-bank codebook (VWL-M, :class:`~mmwsss.models.layers.MemoryBankCodebook`)
share one encoder. The word classifier (``p_word`` from the GAP feature) and the
word-to-image classifier (``p_w2i`` from the word frequency) are layers of the
head, not of the encoder.

The functional core (:func:`word_similarity`, :func:`assign_words`,
:func:`sample_codebook`, :func:`kmeans_codebook`) and the codebooks' common base
(:class:`BaseCodebook`: shape, initialisation) are shared with the codebooks.
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import broadcast

from mmwsss.registry import MODELS

#: the L2 normalisation's lower bound of the norm (``F.normalize``'s default): a
#: zero feature vector (possible after a ReLU) has similarity 0 to every word and
#: is assigned to word 0, as in the official code
VW_EPS = 1e-12

#: assignment of a pixel left out by ``valid_mask``
IGNORE_WORD = -1


@dataclass
class VisualWords:
    """The visual words of a batch (:meth:`VisualWordEncoder.forward`).

    Attributes:
        similarity (Tensor): (N, K, h, w) cosine similarity ``S`` of every pixel to
            every word (Eq. 2), in [-1, 1].
        probs (Tensor): (N, K, h, w) ``P = softmax_k(tau * S)`` (Eq. 3); sums to 1
            over the words at every pixel.
        assignments (Tensor): (N, h, w) long, the word label ``Y = argmax_k P`` of
            every pixel (Eq. 4); ``IGNORE_WORD`` (-1) outside ``valid_mask``.
            Detached.
        word_labels (Tensor): (N, K) multi-hot image word label ``y_word``
            (``y_word_j = 1`` iff word j is the label of a pixel of the image),
            in the dtype of ``probs``. Detached.
        frequency (Tensor): (N, K) soft word frequency ``f_word`` (Eq. 5): the sum
            of ``P`` over the pixels, divided by their number with
            ``hist_reduce='mean'`` (then it sums to 1 over the words).
    """
    similarity: torch.Tensor
    probs: torch.Tensor
    assignments: torch.Tensor
    word_labels: torch.Tensor
    frequency: torch.Tensor


def _check_codebook(codebook: torch.Tensor, channels: int) -> torch.Tensor:
    """The codebook as (K, C); a (K, C, 1, 1) conv weight is accepted."""
    if codebook.dim() == 4 and codebook.shape[2:] == (1, 1):
        codebook = codebook.flatten(1)
    if codebook.dim() != 2:
        raise ValueError('the codebook must be (K, C) (or (K, C, 1, 1)), got '
                         f'shape {tuple(codebook.shape)}')
    if codebook.shape[1] != channels:
        raise ValueError(f'the codebook has {codebook.shape[1]} channels but the '
                         f'features have {channels}')
    return codebook


def _check_mask(valid_mask: Optional[torch.Tensor], feats: torch.Tensor):
    if valid_mask is None:
        return None
    n, _, h, w = feats.shape
    if valid_mask.shape != (n, h, w):
        raise ValueError(f'valid_mask must be (N, h, w) = {(n, h, w)}, got '
                         f'{tuple(valid_mask.shape)}')
    return valid_mask.to(device=feats.device, dtype=torch.bool)


def word_similarity(feats: torch.Tensor, codebook: torch.Tensor,
                    detach_features: bool = False) -> torch.Tensor:
    """``S_ij = F_i^T C_j / (||F_i||_2 ||C_j||_2)`` (Ru et al., IJCV 2023, Eq. 2).

    Args:
        feats (Tensor): (N, C, h, w) features ``F``.
        codebook (Tensor): (K, C) codebook ``C`` (or (K, C, 1, 1)).
        detach_features (bool): stop the gradient to ``F`` (the official code
            normalises and detaches ``F``; the gradient then reaches only ``C``).

    Returns:
        Tensor: (N, K, h, w) similarity in [-1, 1].
    """
    if feats.dim() != 4:
        raise ValueError(f'features must be (N, C, h, w), got shape '
                         f'{tuple(feats.shape)}')
    codebook = _check_codebook(codebook, feats.shape[1])
    f = F.normalize(feats, p=2, dim=1, eps=VW_EPS)
    if detach_features:
        f = f.detach()
    c = F.normalize(codebook, p=2, dim=1, eps=VW_EPS).to(f.dtype)
    return torch.einsum('nchw,kc->nkhw', f, c)


def assign_words(feats: torch.Tensor, codebook: torch.Tensor,
                 valid_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The word label of every pixel, ``Y_i = argmax_j S_ij`` (Eq. 4; the argmax of
    ``P`` is that of ``S`` for every temperature), without gradients.

    Args:
        feats (Tensor): (N, C, h, w) features.
        codebook (Tensor): (K, C) codebook.
        valid_mask (Tensor, optional): (N, h, w) bool, the pixels to assign; the
            others get ``IGNORE_WORD``.

    Returns:
        Tensor: (N, h, w) long.
    """
    with torch.no_grad():
        labels = word_similarity(feats, codebook).argmax(dim=1)
        mask = _check_mask(valid_mask, feats)
        if mask is not None:
            labels = labels.masked_fill(~mask, IGNORE_WORD)
    return labels


def flatten_features(feats: torch.Tensor,
                     valid_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(M, C) pixel features of (N, C, h, w) ``feats`` (inside ``valid_mask``,
    (N, h, w) bool, if given); (M, C) input is returned as it is."""
    if feats.dim() == 2:
        if valid_mask is not None:
            return feats[valid_mask.reshape(-1).to(feats.device, torch.bool)]
        return feats
    if feats.dim() != 4:
        raise ValueError('features must be (N, C, h, w) or (M, C), got shape '
                         f'{tuple(feats.shape)}')
    flat = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    mask = _check_mask(valid_mask, feats)
    if mask is not None:
        flat = flat[mask.reshape(-1)]
    return flat


def sample_codebook(feats: torch.Tensor, num_words: int,
                    valid_mask: Optional[torch.Tensor] = None,
                    generator: Optional[torch.Generator] = None
                    ) -> torch.Tensor:
    """A (K, C) codebook of ``num_words`` pixel features drawn uniformly **with
    replacement** (the "random sample initialisation" of Ru et al., IJCV 2023,
    Table 5; the official code draws ``torch.randint(N, (K,))``).

    Args:
        feats (Tensor): (N, C, h, w) or (M, C) features.
        num_words (int): K.
        valid_mask (Tensor, optional): (N, h, w) bool, the pixels to draw from.
        generator (torch.Generator, optional): a CPU generator for the draw.
    """
    flat = flatten_features(feats.detach(), valid_mask)
    if flat.shape[0] == 0:
        raise ValueError('sample_codebook: no feature to sample from')
    idx = torch.randint(flat.shape[0], (int(num_words), ), generator=generator)
    return flat[idx.to(flat.device)].clone()


def kmeans_codebook(feats: torch.Tensor,
                    init: torch.Tensor,
                    num_iters: int = 10,
                    valid_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Lloyd iterations of the VWL word assignment from the codebook ``init``: a
    pixel goes to its most cosine-similar word (Eq. 4), a word becomes the mean of
    its pixels' features (Eq. 6), i.e. the memory-bank update (Eq. 7) with
    ``rho = 1``. A word without pixels keeps its vector.

    Args:
        feats (Tensor): (N, C, h, w) or (M, C) features.
        init (Tensor): (K, C) initial codebook (e.g. :func:`sample_codebook`).
        num_iters (int): iterations.
        valid_mask (Tensor, optional): (N, h, w) bool, the pixels to cluster.

    Returns:
        Tensor: (K, C) codebook, float32 unless ``init`` is float64.
    """
    dtype = init.dtype if init.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        flat = flatten_features(feats.detach(), valid_mask).to(dtype)
        centres = init.detach().to(device=flat.device, dtype=dtype).clone()
        num_words = centres.shape[0]
        for _ in range(int(num_iters)):
            sim = F.normalize(flat, dim=1, eps=VW_EPS) @ F.normalize(
                centres, dim=1, eps=VW_EPS).t()
            labels = sim.argmax(dim=1)
            sums = flat.new_zeros(centres.shape).index_add_(0, labels, flat)
            counts = torch.bincount(labels, minlength=num_words).to(dtype)
            assigned = counts > 0
            centres[assigned] = sums[assigned] / counts[assigned, None]
    return centres


@MODELS.register_module()
class VisualWordEncoder(nn.Module):
    """VWL's visual word encoding (Ru et al., IJCV 2023, §3.3, Eqs. 2-5).

    For features ``F`` (N, C, h, w) and a codebook ``C`` (K, C) given to
    :meth:`forward`:

    * Eq. 2: ``S_ij = F_i^T C_j / (||F_i|| ||C_j||)``, the cosine similarity of
      pixel i to word j;
    * Eq. 3: ``P_ij = exp(tau S_ij) / sum_n exp(tau S_in)``, the softmax over the
      words with the temperature ``tau`` **multiplying** the logits (larger
      ``tau``, sharper ``P``; ``tau -> 0`` gives the uniform ``1/K``);
    * Eq. 4: ``Y_i = argmax_j P_ij``, the word label of every pixel (every pixel
      of the map, foreground and background: "y_word is generated based on all
      pixels in feature map F", §3.5), and the multi-hot image word label
      ``y_word`` (word j is in the image iff some ``Y_i = j``); both are detached
      (they are targets);
    * Eq. 5: the soft word frequency ``f_word_j = 1/(hw) sum_i P_ij`` (the input of
      the learning-based strategy's word-to-image classifier).

    Paper and official code (rulixiang/vwe, ``v2/network/resnet_cam.py``) differ
    in Eq. 5: the paper divides by ``hw`` (``hist_reduce='mean'``, default; the
    frequency then sums to 1), the code sums over the pixels
    (``hist_reduce='sum'``, ``hw`` times larger: about 1000x for a 32 x 32 map,
    which scales the word-to-image logits and the codebook's gradient alike).
    The paper does not say where the gradient stops; the code normalises and
    **detaches** ``F`` before Eq. 2 (``detach_features=True``, default), so the
    frequency sends gradient to the codebook only.

    Args:
        tau (float): the temperature of Eq. 3, > 0 (paper: 1.0).
        hist_reduce (str): ``'mean'`` (Eq. 5, default) or ``'sum'`` (official
            code) over the (valid) pixels of an image.
        detach_features (bool): stop the gradient from ``S`` (and everything
            after it) to the features (official code, default).
    """

    def __init__(self,
                 tau: float = 1.0,
                 hist_reduce: str = 'mean',
                 detach_features: bool = True):
        super().__init__()
        if not tau > 0:
            raise ValueError(f'VisualWordEncoder: tau must be > 0, got {tau!r}')
        if hist_reduce not in ('mean', 'sum'):
            raise ValueError("VisualWordEncoder: hist_reduce must be 'mean' "
                             f"(paper Eq. 5) or 'sum' (official code), got "
                             f'{hist_reduce!r}')
        self.tau = float(tau)
        self.hist_reduce = hist_reduce
        self.detach_features = bool(detach_features)

    def forward(self,
                feats: torch.Tensor,
                codebook: torch.Tensor,
                valid_mask: Optional[torch.Tensor] = None) -> VisualWords:
        """Encode features with a codebook.

        Args:
            feats (Tensor): (N, C, h, w) features ``F`` (not normalised).
            codebook (Tensor): (K, C) codebook (or a (K, C, 1, 1) conv weight).
            valid_mask (Tensor, optional): (N, h, w) bool, the pixels that count
                (e.g. inside the unpadded image). By default every pixel counts,
                as in the paper and the official code. Pixels outside get the
                assignment ``IGNORE_WORD``, no word label and no frequency; an
                image without a valid pixel has zero labels and frequency.

        Returns:
            VisualWords: ``similarity``, ``probs``, ``assignments``,
            ``word_labels`` and ``frequency``.
        """
        sim = word_similarity(feats, codebook,
                              detach_features=self.detach_features)
        probs = torch.softmax(self.tau * sim, dim=1)
        num_words = sim.shape[1]
        mask = _check_mask(valid_mask, feats)
        with torch.no_grad():
            assignments = sim.argmax(dim=1)
            # presence of every word; left-out pixels go to an extra column
            index = assignments.flatten(1)
            if mask is not None:
                assignments = assignments.masked_fill(~mask, IGNORE_WORD)
                index = index.masked_fill(~mask.flatten(1), num_words)
            word_labels = probs.new_zeros(index.shape[0], num_words + 1)
            word_labels = word_labels.scatter_(1, index, 1.0)[:, :num_words]
        if mask is None:
            frequency = probs.sum(dim=(2, 3))
            num_pixels = float(probs.shape[2] * probs.shape[3])
            if self.hist_reduce == 'mean':
                frequency = frequency / num_pixels
        else:
            m = mask[:, None].to(probs.dtype)
            frequency = (probs * m).sum(dim=(2, 3))
            if self.hist_reduce == 'mean':
                frequency = frequency / m.sum(dim=(2, 3)).clamp(min=1)
        return VisualWords(
            similarity=sim,
            probs=probs,
            assignments=assignments,
            word_labels=word_labels,
            frequency=frequency)

    def assign(self, feats: torch.Tensor, codebook: torch.Tensor,
               valid_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, h, w) word labels ``Y`` alone (Eq. 4), without gradients."""
        return assign_words(feats, codebook, valid_mask)

    def extra_repr(self) -> str:
        return (f'tau={self.tau}, hist_reduce={self.hist_reduce!r}, '
                f'detach_features={self.detach_features}')


def word_label_counts(assignments: torch.Tensor,
                      num_words: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(flat valid assignments (M,), pixels per word (K,)) of (N, h, w) or (M,)
    assignments, ``IGNORE_WORD`` (any negative value) left out."""
    flat = assignments.reshape(-1).long()
    flat = flat[flat >= 0]
    counts = torch.bincount(flat, minlength=num_words)
    if counts.numel() > num_words:
        raise ValueError(f'word label {counts.numel() - 1} out of range for '
                         f'{num_words} words')
    return flat, counts


class BaseCodebook(nn.Module):
    """What the two VWL codebooks share: a (K, C) matrix of word vectors
    (:meth:`forward` returns it, the argument of :class:`VisualWordEncoder`) and
    its initialisation.

    The paper initialises the codebook randomly (Ru et al., IJCV 2023, §4.4 and
    Table 5: "random initialization", the better of the two it compares); the
    official code draws ``kaiming_normal_(a=sqrt(5))`` (std ``sqrt(1/(3C))``,
    0.0128 for C = 2048), which ``init='random'`` does. ``init='sample'`` is
    Table 5's "random sample initialization" (K pixel features of a batch,
    drawn with replacement) and ``init='kmeans'`` refines those samples with
    :func:`kmeans_codebook`; both need features, so the codebook then reports
    :attr:`needs_init` until :meth:`init_from_features` has run (the flag is a
    buffer, saved in checkpoints: a resumed run does not draw again).

    A subclass provides the (K, C) tensor as the attribute ``codebook`` (a
    parameter or a buffer) before calling :meth:`reset_parameters`.

    Args:
        num_words (int): K.
        channels (int): C, the feature channels.
        init (str): ``'random'`` (default), ``'sample'`` or ``'kmeans'``.
        kmeans_iters (int): Lloyd iterations of ``init='kmeans'``.
    """
    INIT_METHODS = ('random', 'sample', 'kmeans')

    def __init__(self,
                 num_words: int,
                 channels: int,
                 init: str = 'random',
                 kmeans_iters: int = 10):
        super().__init__()
        if int(num_words) < 1 or int(channels) < 1:
            raise ValueError(f'{type(self).__name__}: num_words and channels '
                             f'must be >= 1, got {num_words!r}, {channels!r}')
        if init not in self.INIT_METHODS:
            raise ValueError(f'{type(self).__name__}: init must be one of '
                             f'{self.INIT_METHODS}, got {init!r}')
        if int(kmeans_iters) < 0:
            raise ValueError(f'kmeans_iters must be >= 0, got {kmeans_iters!r}')
        self.num_words = int(num_words)
        self.channels = int(channels)
        self.init = init
        self.kmeans_iters = int(kmeans_iters)
        self.register_buffer('initialized', torch.tensor(init == 'random'))

    def forward(self) -> torch.Tensor:
        """The (K, C) codebook, the argument of :class:`VisualWordEncoder`."""
        return self.codebook

    def reset_parameters(self) -> None:
        """``kaiming_normal_(a=sqrt(5))`` (official code); with ``init`` other
        than ``'random'`` the codebook needs :meth:`init_from_features` again."""
        with torch.no_grad():
            nn.init.kaiming_normal_(self.codebook, a=math.sqrt(5))
            self.initialized.fill_(self.init == 'random')

    @property
    def needs_init(self) -> bool:
        """True until :meth:`init_from_features` has run (never with
        ``init='random'``)."""
        return not bool(self.initialized)

    def init_from_features(self,
                           feats: torch.Tensor,
                           valid_mask: Optional[torch.Tensor] = None,
                           method: Optional[str] = None,
                           generator: Optional[torch.Generator] = None,
                           sync: bool = True) -> torch.Tensor:
        """Set the codebook from features and mark it initialised.

        Args:
            feats (Tensor): (N, C, h, w) or (M, C) features (detached here).
            valid_mask (Tensor, optional): (N, h, w) bool, the pixels to use.
            method (str, optional): ``'sample'`` or ``'kmeans'``; default
                ``self.init`` (``'sample'`` when that is ``'random'``).
            generator (torch.Generator, optional): CPU generator of the draw.
            sync (bool): broadcast rank 0's codebook to every rank (MMEngine's
                ``broadcast``, a no-op without a process group), so that all
                ranks hold the same words whatever their batches.

        Returns:
            Tensor: the new (K, C) codebook.
        """
        method = method or ('sample' if self.init == 'random' else self.init)
        if method not in ('sample', 'kmeans'):
            raise ValueError("init_from_features: method must be 'sample' or "
                             f"'kmeans', got {method!r}")
        cb = self.codebook
        new = sample_codebook(feats, self.num_words, valid_mask, generator)
        if method == 'kmeans':
            new = kmeans_codebook(feats, new, self.kmeans_iters, valid_mask)
        with torch.no_grad():
            _check_codebook(new, self.channels)
            cb.copy_(new.to(device=cb.device, dtype=cb.dtype))
            if sync:
                broadcast(cb, src=0)
            self.initialized.fill_(True)
        return cb

    def extra_repr(self) -> str:
        return (f'num_words={self.num_words}, channels={self.channels}, '
                f'init={self.init!r}')
