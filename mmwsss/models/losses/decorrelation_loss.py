"""The DeCov loss on VWL's learned codebook (Ru et al., "Weakly supervised
semantic segmentation by visual words learning and hybrid pooling", IJCV 2023,
§3.5, Eqs. 13-15; Cogswell et al., "Reducing Overfitting in Deep Networks by
Decorrelating Representations", ICLR 2016)."""
import torch
import torch.nn as nn

from mmwsss.registry import MODELS


def word_covariance(codebook: torch.Tensor,
                    normalize: bool = True) -> torch.Tensor:
    """(K, K) covariance of the rows (words) of a (K, C) codebook: every word
    vector centred over its C entries, ``Cc Cc^T``, divided by C with
    ``normalize`` (the covariance of DeCov, 1/N over the N observations, here the
    C feature dimensions) or not (the official code's unnormalised Gram)."""
    if codebook.dim() == 4 and codebook.shape[2:] == (1, 1):
        codebook = codebook.flatten(1)
    if codebook.dim() != 2:
        raise ValueError('decorrelation loss: the codebook must be (K, C), got '
                         f'shape {tuple(codebook.shape)}')
    with torch.autocast(device_type=codebook.device.type, enabled=False):
        c = codebook if codebook.dtype == torch.float64 else codebook.float()
        c = c - c.mean(dim=1, keepdim=True)
        cov = c @ c.t()
        if normalize:
            cov = cov / c.shape[1]
    return cov


def decorrelation_loss(codebook: torch.Tensor,
                       squared: bool = True,
                       normalize: bool = True) -> torch.Tensor:
    """The DeCov loss of a codebook (Ru et al., IJCV 2023, Eq. 13):

    ``L_decov = 1/2 (||C_hat||_F^2 - ||diag(C_hat)||_2^2)``,

    half the sum of the squared off-diagonal entries of the covariance ``C_hat``
    of the words (:func:`word_covariance`): 0 when the centred word vectors are
    mutually orthogonal, larger as words are correlated.

    The official code (rulixiang/vwe, ``v2/network/resnet_cam.py``) differs:
    ``L = 1/2 (||G||_F - ||diag(G)||_2)`` with **non-squared** norms
    (``squared=False``) of the **unnormalised** Gram ``G`` of the centred words
    (``normalize=False``). For K = 256, C = 2048 and its initialisation this is
    about 0.16, the paper's form about 4e-7 (1.8 squared without the
    normalisation). The non-squared form is computed as
    ``off / (||G||_F + ||diag(G)||_2)``, ``off`` the squared off-diagonal sum
    (the same value, never negative).

    Args:
        codebook (Tensor): (K, C) (or (K, C, 1, 1)).
        squared (bool): squared norms (paper, default) or not (official code).
        normalize (bool): divide the Gram by C, a covariance (paper, default),
            or not (official code).

    Returns:
        Tensor: the scalar loss (float32; float64 for a float64 codebook).
    """
    cov = word_covariance(codebook, normalize=normalize)
    diag_sq = cov.diagonal().pow(2).sum()
    off_sq = (cov - torch.diag_embed(cov.diagonal())).pow(2).sum()
    if squared:
        return 0.5 * off_sq
    # ||G||_F - ||diag G||_2 = off / (sqrt(diag + off) + sqrt(diag))
    denom = (diag_sq + off_sq).sqrt() + diag_sq.sqrt()
    return 0.5 * off_sq / denom.clamp(min=torch.finfo(denom.dtype).tiny)


@MODELS.register_module()
class DecorrelationLoss(nn.Module):
    """The DeCov loss on VWL-L's codebook (Ru et al., IJCV 2023, Eq. 13), see
    :func:`decorrelation_loss`; part of the auxiliary loss
    ``L_aux = L_cls(p_w2i, y_img) + L_decov`` (Eq. 14) of the total Eq. 15, with
    weight 1 in the paper and the official code. It reaches the codebook only.

    Paper (default) and official code differ in the form: the code uses
    non-squared norms (``squared=False``) of the unnormalised Gram of the
    centred words (``normalize=False``).

    Args:
        loss_weight (float): multiplies the loss (paper: 1).
        squared (bool): squared norms of Eq. 13 (default) or the code's plain
            norms.
        normalize (bool): the covariance (Gram / C, default) or the code's Gram.
        loss_name (str): key of the loss in the losses dict.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 squared: bool = True,
                 normalize: bool = True,
                 loss_name: str = 'loss_decov'):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.squared = bool(squared)
        self.normalize = bool(normalize)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, codebook: torch.Tensor) -> torch.Tensor:
        """The weighted loss of a (K, C) codebook."""
        return self.loss_weight * decorrelation_loss(
            codebook, squared=self.squared, normalize=self.normalize)

    def extra_repr(self) -> str:
        return (f'loss_weight={self.loss_weight}, squared={self.squared}, '
                f'normalize={self.normalize}, loss_name={self.loss_name!r}')
