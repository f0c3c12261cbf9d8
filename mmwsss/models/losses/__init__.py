from .hybrid_attention_loss import HybridAttentionLoss, hybrid_attention_loss

__all__ = ['HybridAttentionLoss', 'hybrid_attention_loss']
