"""VWL's classification head: hybrid pooling for the image labels and visual words
learning (Ru et al., "Weakly supervised semantic segmentation by visual words
learning and hybrid pooling", IJCV 2023; docs/methods/vwl.md)."""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.registry import MODELS
from ..layers import MemoryBankCodebook, VisualWordEncoder
from .cam_head import CAMHead

#: PyTorch's default init of a convolution, VWL's new layers (official code)
TORCH_DEFAULT_CONV_INIT = dict(
    type='Kaiming', a=math.sqrt(5), mode='fan_in', nonlinearity='leaky_relu',
    distribution='uniform', bias=0, layer='Conv2d')


@MODELS.register_module()
class VWLHead(CAMHead):
    """CAM head with visual words learning (VWL) and hybrid pooling (HP).

    With ``F`` the backbone feature (N, C, h, w) (:meth:`pre_logits`):

    * image labels (Eqs. 1, 10): ``p_img = W_img HP(F)`` (bias-free 1x1 class
      conv ``classifier``, ``pooling=dict(type='HybridPooling')``), loss
      ``L_cls(p_img, y_img)``; the CAM is ``ReLU(W_img F)`` (Eq. 1), which
      involves neither the pooling nor the words;
    * visual words (Eqs. 2-4): every pixel of ``F`` is assigned to its most
      cosine-similar word of a K-word codebook (``F`` detached), the image's
      word label ``y_word`` is the set of its pixels' words, and a bias-free
      1x1 word classifier on ``GAP(F)`` predicts it: ``L_cls(p_word, y_word)``
      (Eq. 12);
    * the codebook (``codebook``):

      - ``dict(type='LearnedCodebook')`` (VWL-L, "Ours-L"): a parameter trained
        by the word-to-image classifier ``p_w2i = W_w2i f_word`` on the soft
        word frequencies (Eq. 5) with ``L_cls(p_w2i, y_img)`` and the
        decorrelation loss (Eq. 13): ``L_all`` of Eq. 15;
      - ``dict(type='MemoryBankCodebook', rho=1e-3)`` (VWL-M, "Ours-M"): a
        buffer, after the labels of the step are made, moved towards the
        per-word means of the step's features (Eqs. 6-7), with the sums and
        counts all-reduced over the processes so that every rank holds the same
        bank (Alg. 1); the loss is Eq. 12. The bank is part of the model's
        state: every checkpoint holds it and ``--resume`` restores it.

    ``L_cls`` is the multi-label soft margin loss (Eq. 11 with the minus sign
    it lacks as printed). All loss weights are 1 in the paper.

    Paper vs official code (rulixiang/vwe ``v2/``), the paper the default:

    * ``hist_reduce``: ``'mean'`` (Eq. 5, ``f_word = 1/hw sum_i P_i``) or
      ``'sum'`` (code: about ``hw`` times larger word-to-image logits);
    * ``decov_loss``: ``DecorrelationLoss(squared=True, normalize=True)``
      (Eq. 13) or the code's ``squared=False, normalize=False``;
    * ``MemoryBankCodebook(init='random')`` (paper) or ``'sample'`` (code:
      random features of the first batch), ``mean_eps`` 0 or the code's 1e-4.

    Args:
        codebook (dict): ``LearnedCodebook`` or ``MemoryBankCodebook`` config;
            ``channels`` defaults to the classifier's input channels.
        tau (float): temperature ``tau`` of Eq. 3 (paper: 1).
        hist_reduce (str): ``'mean'`` (paper) or ``'sum'`` (code), Eq. 5.
        detach_features (bool): the similarity of Eq. 2 is computed on detached
            features (official code; default True).
        word_loss_weight (float): weight of ``L_cls(p_word, y_word)``.
        w2i_loss_weight (float): weight of ``L_cls(p_w2i, y_img)`` (VWL-L).
        decov_loss (dict, optional): the decorrelation loss (VWL-L);
            None leaves it out (the conference version, VWE).
        **kwargs: :class:`CAMHead` arguments (``in_channels``,
            ``num_classes``; defaults here: ``pooling`` = hybrid pooling with
            gamma 2 and splits (1, 2, 4), ``classifier_bias=False``, no extra
            convolutions, PyTorch's default init of the new convolutions).
    """

    def __init__(self,
                 codebook: dict,
                 tau: float = 1.0,
                 hist_reduce: str = 'mean',
                 detach_features: bool = True,
                 word_loss_weight: float = 1.0,
                 w2i_loss_weight: float = 1.0,
                 decov_loss: Optional[dict] = dict(type='DecorrelationLoss'),
                 **kwargs):
        kwargs.setdefault('pooling', dict(type='HybridPooling'))
        kwargs.setdefault('classifier_bias', False)
        kwargs.setdefault('init_cfg', TORCH_DEFAULT_CONV_INIT)
        super().__init__(**kwargs)
        channels = self.classifier.in_channels
        codebook = dict(codebook)
        codebook.setdefault('channels', channels)
        self.codebook = MODELS.build(codebook)
        if self.codebook.channels != channels:
            raise ValueError(
                f'VWLHead: codebook.channels ({self.codebook.channels}) must '
                f'equal the features entering the classifier ({channels})')
        self.memory_bank = isinstance(self.codebook, MemoryBankCodebook)
        num_words = self.codebook.num_words
        self.num_words = num_words
        self.encoder = VisualWordEncoder(
            tau=tau, hist_reduce=hist_reduce, detach_features=detach_features)
        self.word_classifier = nn.Conv2d(channels, num_words, 1, bias=False)
        self.word_loss_weight = float(word_loss_weight)
        self.w2i_loss_weight = float(w2i_loss_weight)
        if self.memory_bank:
            self.w2i_classifier = None
            self.decov_loss = None
        else:
            self.w2i_classifier = nn.Conv2d(num_words, self.num_classes, 1,
                                            bias=False)
            self.decov_loss = (MODELS.build(decov_loss)
                               if decov_loss is not None else None)

    # --------------------------------------------------------------- losses
    def loss(self, feats, data_samples: Sequence) -> Tuple[dict, dict]:
        """The losses of Eq. 15 (VWL-L) / Eq. 12 (VWL-M) and the outputs
        (``score_map``, ``logits``, ``word_logits``, ``word_labels``, and for
        VWL-L ``w2i_logits``). VWL-M updates the bank after the labels of this
        step are made from the bank before it (Alg. 1)."""
        x = self.pre_logits(feats)
        outputs = self.outputs_from_pre_logits(x)
        if not isinstance(outputs, dict):  # pooling=None: GAP of the scores
            outputs = dict(score_map=outputs,
                           logits=outputs.mean(dim=(2, 3)))
        if self.codebook.needs_init:
            self.codebook.init_from_features(x.detach())
        words = self.encoder(x, self.codebook())
        gap = x.mean(dim=(2, 3), keepdim=True)
        outputs['word_logits'] = self.word_classifier(gap).flatten(1)
        outputs['word_labels'] = words.word_labels
        if self.w2i_classifier is not None:
            outputs['w2i_logits'] = self.w2i_classifier(
                words.frequency[:, :, None, None]).flatten(1)
        losses = self.loss_by_outputs(outputs, data_samples)
        if self.memory_bank:
            self.codebook.update(x.detach(), words.assignments)
        return losses, outputs

    def loss_by_outputs(self, outputs, data_samples: Sequence) -> dict:
        """``L_cls(p_img)`` (:class:`CAMHead`), and with the outputs of
        :meth:`loss` ``L_cls(p_word, y_word)``, ``L_cls(p_w2i, y_img)`` and the
        decorrelation loss of the codebook."""
        losses = super().loss_by_outputs(outputs, data_samples)
        if not isinstance(outputs, dict) or 'word_logits' not in outputs:
            return losses
        losses['loss_word'] = self.word_loss_weight * \
            F.multilabel_soft_margin_loss(outputs['word_logits'],
                                          outputs['word_labels'])
        if 'w2i_logits' in outputs:
            labels = self.gt_labels(data_samples, outputs['w2i_logits'])
            losses['loss_w2i'] = self.w2i_loss_weight * \
                F.multilabel_soft_margin_loss(outputs['w2i_logits'], labels)
        if self.decov_loss is not None:
            losses[self.decov_loss.loss_name] = self.decov_loss(
                self.codebook())
        return losses

    def train_step_extras(self, outputs) -> dict:
        """``num_words``: the number of distinct words of each image (N,)."""
        if isinstance(outputs, dict) and 'word_labels' in outputs:
            return dict(num_words=outputs['word_labels'].sum(1))
        return {}

    def extra_repr(self) -> str:
        return (f'memory_bank={self.memory_bank}, '
                f'num_words={self.num_words}')
