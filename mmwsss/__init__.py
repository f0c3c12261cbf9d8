"""mmwsss: weakly supervised semantic segmentation for the OpenMMLab stack.

Importing mmwsss first makes the pinned CPU stack usable (see
:mod:`mmwsss.utils.compat`): a CUDA-only torchvision over CPU torch is shimmed only
when its ops really fail to load, and the types MMEngine writes into checkpoints are
allow-listed for torch's ``weights_only`` loader. It also registers ``mmwsss`` with
MMEngine's config lookup, so that ``_base_ = 'mmwsss::oaa/oaa_vgg16_voc.py'`` works in
configs outside the repository (:mod:`mmwsss.utils.config_scope`).
"""
from .utils.compat import setup_compat
from .utils.config_scope import register_config_scope
from .version import __version__

setup_compat()
register_config_scope()  # `_base_ = 'mmwsss::...'` (docs/extending.md)

__all__ = ['__version__']
