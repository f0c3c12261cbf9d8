from .attention_drop import AttentionDrop
from .class_wise_transformer_layer import ClassWiseTransformerLayer
from .cma import CollaborativeMultiAttention, sinusoidal_positions
from .da_layer import DiscriminativeActivation

__all__ = [
    'AttentionDrop', 'ClassWiseTransformerLayer', 'CollaborativeMultiAttention',
    'DiscriminativeActivation', 'sinusoidal_positions'
]
