from .attention_drop import AttentionDrop
from .class_wise_transformer_layer import ClassWiseTransformerLayer
from .cma import CollaborativeMultiAttention, sinusoidal_positions
from .da_layer import DiscriminativeActivation
from .hybrid_pooling import HybridPooling, hybrid_pooling, local_max_pooling
from .learned_codebook import LearnedCodebook
from .memory_bank_codebook import MemoryBankCodebook
from .visual_word_encoder import (BaseCodebook, VisualWordEncoder, VisualWords,
                                  assign_words, kmeans_codebook,
                                  sample_codebook, word_similarity)

__all__ = [
    'AttentionDrop', 'ClassWiseTransformerLayer', 'CollaborativeMultiAttention',
    'DiscriminativeActivation', 'sinusoidal_positions', 'HybridPooling',
    'hybrid_pooling', 'local_max_pooling', 'LearnedCodebook',
    'MemoryBankCodebook', 'BaseCodebook', 'VisualWordEncoder', 'VisualWords',
    'assign_words', 'kmeans_codebook', 'sample_codebook', 'word_similarity'
]
