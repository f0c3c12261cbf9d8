"""Segmentation decode heads (mmseg ``BaseDecodeHead`` subclasses)."""
from .deeplabv2_head import DeepLabV2Head
from .largefov_head import LargeFOVHead

__all__ = ['DeepLabV2Head', 'LargeFOVHead']
