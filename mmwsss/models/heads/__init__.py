from .base_cam_head import BaseCAMHead
from .cam_head import CAMHead
from .gain_head import GAINHead
from .iam_head import IAMHead

__all__ = ['BaseCAMHead', 'CAMHead', 'GAINHead', 'IAMHead']
