from .attention_drop import AttentionDrop

__all__ = ['AttentionDrop']
