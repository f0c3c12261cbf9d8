"""The learned codebook of VWL's learning-based strategy, VWL-L (Ru et al.,
"Weakly supervised semantic segmentation by visual words learning and hybrid
pooling", IJCV 2023, §3.3 "Learning-based strategy", Eqs. 5, 13-15)."""
import torch
import torch.nn as nn

from mmwsss.registry import MODELS
from .visual_word_encoder import BaseCodebook


@MODELS.register_module()
class LearnedCodebook(BaseCodebook):
    """VWL-L's codebook ``C`` (K, C): a trainable parameter (Ru et al., IJCV 2023,
    §3.3), learned from the gradient of the word-to-image loss
    ``L_cls(p_w2i, y_img)`` through the soft word frequency (Eq. 5) and of the
    DeCov loss (Eq. 13, :class:`~mmwsss.models.losses.DecorrelationLoss`); the
    features reach it only through the word frequency, with the features
    detached (:class:`~mmwsss.models.layers.VisualWordEncoder`).

    The parameter is ``weight`` (K, C) (the official code stores it as a
    (K, C, 1, 1) conv weight; the values are the same), initialised with
    ``kaiming_normal_(a=sqrt(5))`` as in the official code (the paper: "randomly
    initialized", §4.4). The official code trains it with the new layers' 10x
    learning rate and the common weight decay (a ``paramwise_cfg`` matter of the
    config). See :class:`~mmwsss.models.layers.visual_word_encoder.BaseCodebook`
    for the ``init`` options (Table 5's "random sample initialization").

    Args:
        num_words (int): K (paper: 256).
        channels (int): C, the feature channels (ResNet-101: 2048).
        init (str): ``'random'`` (default), ``'sample'`` or ``'kmeans'``.
        kmeans_iters (int): Lloyd iterations of ``init='kmeans'``.
    """

    def __init__(self,
                 num_words: int,
                 channels: int,
                 init: str = 'random',
                 kmeans_iters: int = 10):
        super().__init__(num_words, channels, init=init,
                         kmeans_iters=kmeans_iters)
        self.weight = nn.Parameter(torch.empty(self.num_words, self.channels))
        self.reset_parameters()

    @property
    def codebook(self) -> torch.Tensor:
        """The (K, C) parameter ``weight``."""
        return self.weight
