"""mmwsss: weakly supervised semantic segmentation for the OpenMMLab stack.

Importing mmwsss first makes the pinned CPU stack usable (see
:mod:`mmwsss.utils.compat`): a CUDA-only torchvision over CPU torch is shimmed only
when its ops really fail to load, and the types MMEngine writes into checkpoints are
allow-listed for torch's ``weights_only`` loader.
"""
from .utils.compat import setup_compat
from .version import __version__

setup_compat()

__all__ = ['__version__']
