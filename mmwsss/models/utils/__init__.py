from .cam_ops import (CAM_EPS, erase_inputs, minmax_normalize_cams,
                      normalize_cams)

__all__ = ['CAM_EPS', 'normalize_cams', 'minmax_normalize_cams', 'erase_inputs']
