from .base_cam_head import BaseCAMHead
from .cam_head import CAMHead
from .edam_head import EDAMHead
from .gain_head import GAINHead
from .iam_head import IAMHead
from .vgg_fc_head import VGGFCHead
from .vwl_head import VWLHead

__all__ = [
    'BaseCAMHead', 'CAMHead', 'EDAMHead', 'GAINHead', 'IAMHead', 'VGGFCHead',
    'VWLHead'
]
