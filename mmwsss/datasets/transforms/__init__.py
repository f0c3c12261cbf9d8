from .cam_to_pseudo_label import CAMToPseudoLabel
from .load_attention_targets import LoadAttentionTargets
from .load_cam_from_file import LoadCAMFromFile
from .load_extra_supervision import LoadExtraSupervision
from .load_saliency_map import LoadSaliencyMap
from .pack_wsss_inputs import PackWSSSInputs
from .random_crop_with_box import RandomCropWithBox

__all__ = [
    'PackWSSSInputs', 'LoadSaliencyMap', 'RandomCropWithBox',
    'LoadAttentionTargets', 'LoadCAMFromFile', 'CAMToPseudoLabel',
    'LoadExtraSupervision'
]
