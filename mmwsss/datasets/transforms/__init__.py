from .load_attention_targets import LoadAttentionTargets
from .load_saliency_map import LoadSaliencyMap
from .pack_wsss_inputs import PackWSSSInputs
from .random_crop_with_box import RandomCropWithBox

__all__ = [
    'PackWSSSInputs', 'LoadSaliencyMap', 'RandomCropWithBox',
    'LoadAttentionTargets'
]
