"""GAIN's attention-mining loss (Li et al., "Tell Me Where to Look: Guided
Attention Inference Network", CVPR 2018 / TPAMI 2020, §3.1, Eq. 5)."""
import torch
import torch.nn as nn

from mmwsss.registry import MODELS
from .utils import mean_per_image

AM_SCORES = ('sigmoid', 'softmax', 'logit')


def attention_mining_loss(logits: torch.Tensor,
                          classes: torch.Tensor,
                          images: torch.Tensor,
                          score: str = 'sigmoid') -> torch.Tensor:
    """``L_am = 1/n sum_{c in GT(I)} s^c(I*c)`` (Eq. 5) per image, averaged over
    the images that have at least one pair.

    Row ``p`` of ``logits`` is the attention-mining stream's output for the masked
    image ``I*c`` of pair ``p`` = (``images[p]``, ``classes[p]``); only its entry of
    class ``classes[p]`` enters the loss.

    The paper calls ``s^c`` the "prediction score" without saying which; options:

    * ``'sigmoid'`` (default): ``sigmoid(logit_c)``, the probability the multi-label
      soft margin loss trains (bounded; re-implementation choice);
    * ``'softmax'``: ``softmax(logits)_c`` over the K classes;
    * ``'logit'``: the raw logit (unbounded below: the network can lower it without
      limit on any erased-looking image).

    Args:
        logits (Tensor): (P, K) logits of the P masked images.
        classes (Tensor): (P,) class of each pair.
        images (Tensor): (P,) image of each pair.
        score (str): ``'sigmoid'``, ``'softmax'`` or ``'logit'``.

    Returns:
        Tensor: the scalar loss; 0 for P = 0 (never NaN).
    """
    if score not in AM_SCORES:
        raise ValueError(f'attention_mining_loss: score must be one of '
                         f'{AM_SCORES}, got {score!r}')
    if logits.dim() != 2 or classes.shape != (logits.shape[0], ) or \
            images.shape != (logits.shape[0], ):
        raise ValueError(
            'attention_mining_loss: logits must be (P, K) and classes, images '
            f'(P,), got {tuple(logits.shape)}, {tuple(classes.shape)}, '
            f'{tuple(images.shape)}')
    x = logits.float()
    if score == 'sigmoid':
        s = torch.sigmoid(x)
    elif score == 'softmax':
        s = torch.softmax(x, dim=1)
    else:
        s = x
    rows = torch.arange(x.shape[0], device=x.device)
    return mean_per_image(s[rows, classes.to(x.device).long()],
                          images.to(x.device))


@MODELS.register_module()
class AttentionMiningLoss(nn.Module):
    """GAIN's attention-mining loss (Eq. 5), see :func:`attention_mining_loss`.

    Args:
        score (str): the score ``s^c`` of a masked image: ``'sigmoid'`` (default),
            ``'softmax'`` or ``'logit'`` (the paper does not say).
        loss_weight (float): multiplies the loss (GAIN's alpha of Eq. 6 is the
            head's ``alpha``; keep this at 1 there).
        loss_name (str): key of the loss in the losses dict.
    """

    def __init__(self, score: str = 'sigmoid', loss_weight: float = 1.0,
                 loss_name: str = 'loss_am'):
        super().__init__()
        if score not in AM_SCORES:
            raise ValueError(f'AttentionMiningLoss: score must be one of '
                             f'{AM_SCORES}, got {score!r}')
        self.score = score
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, logits: torch.Tensor, classes: torch.Tensor,
                images: torch.Tensor) -> torch.Tensor:
        """Args: logits (P, K), classes (P,), images (P,)."""
        return self.loss_weight * attention_mining_loss(
            logits, classes, images, score=self.score)

    def extra_repr(self) -> str:
        return (f'score={self.score!r}, loss_weight={self.loss_weight}, '
                f'loss_name={self.loss_name!r}')
