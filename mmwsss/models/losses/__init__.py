from .attention_mining_loss import AttentionMiningLoss, attention_mining_loss
from .box_attention_loss import BoxAttentionLoss, box_attention_loss
from .decorrelation_loss import (DecorrelationLoss, decorrelation_loss,
                                 word_covariance)
from .hybrid_attention_loss import HybridAttentionLoss, hybrid_attention_loss
from .pixel_attention_loss import PixelAttentionLoss, pixel_attention_loss

__all__ = [
    'HybridAttentionLoss', 'hybrid_attention_loss', 'AttentionMiningLoss',
    'attention_mining_loss', 'PixelAttentionLoss', 'pixel_attention_loss',
    'BoxAttentionLoss', 'box_attention_loss', 'DecorrelationLoss',
    'decorrelation_loss', 'word_covariance'
]
