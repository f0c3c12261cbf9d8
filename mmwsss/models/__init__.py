"""mmwsss models (backbones, heads, classifiers, losses, wrappers)."""
from .wrappers import *  # noqa: F401,F403
