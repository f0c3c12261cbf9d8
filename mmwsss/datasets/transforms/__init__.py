from .load_saliency_map import LoadSaliencyMap
from .pack_wsss_inputs import PackWSSSInputs

__all__ = ['PackWSSSInputs', 'LoadSaliencyMap']
