from .base_cam_head import BaseCAMHead
from .cam_head import CAMHead
from .gain_head import GAINHead
from .iam_head import IAMHead
from .vgg_fc_head import VGGFCHead

__all__ = ['BaseCAMHead', 'CAMHead', 'GAINHead', 'IAMHead', 'VGGFCHead']
