from .cam_ops import (CAM_EPS, erase_inputs, minmax_normalize_cams,
                      normalize_cams)
from .grad_cam import (gap_linear_grad_cam, grad_cam, minmax_normalize,
                       soft_mask)
from .module_ops import bn_eval, detached_call, freeze_modules

__all__ = [
    'CAM_EPS', 'normalize_cams', 'minmax_normalize_cams', 'erase_inputs',
    'grad_cam', 'gap_linear_grad_cam', 'minmax_normalize', 'soft_mask',
    'bn_eval', 'detached_call', 'freeze_modules'
]
