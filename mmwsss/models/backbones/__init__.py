"""mmwsss backbones."""
from .deeplab_vgg16 import DeepLabVGG16
from .vgg_weights import VGGStateDictError, convert_vgg16_state_dict

__all__ = ['DeepLabVGG16', 'convert_vgg16_state_dict', 'VGGStateDictError']
