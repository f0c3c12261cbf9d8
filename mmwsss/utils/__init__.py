from .compat import (fix_torchvision_ops, install_mmcv_ext_stub,
                     register_checkpoint_safe_globals, setup_compat)
from .set_env import register_all_modules

__all__ = [
    'register_all_modules', 'setup_compat', 'fix_torchvision_ops',
    'install_mmcv_ext_stub', 'register_checkpoint_safe_globals'
]
