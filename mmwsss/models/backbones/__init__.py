"""mmwsss backbones."""
from .deeplab_resnet import DeepLabResNet
from .deeplab_vgg16 import DeepLabVGG16
from .resnet38_weights import (ResNet38dStateDictError,
                               convert_resnet38d_state_dict)
from .resnet38d import ResNet38d
from .resnet_weights import (ResNetStateDictError,
                             convert_deeplab_resnet_state_dict,
                             extract_deeplab_aspp)
from .vgg_weights import (VGGStateDictError, convert_vgg16_fc_state_dict,
                          convert_vgg16_state_dict)

__all__ = [
    'DeepLabVGG16', 'convert_vgg16_state_dict', 'convert_vgg16_fc_state_dict',
    'VGGStateDictError',
    'DeepLabResNet', 'convert_deeplab_resnet_state_dict', 'extract_deeplab_aspp',
    'ResNetStateDictError',
    'ResNet38d', 'convert_resnet38d_state_dict', 'ResNet38dStateDictError'
]
