from .cam_head import CAMHead
from .iam_head import IAMHead

__all__ = ['CAMHead', 'IAMHead']
