"""mmwsss evaluation: seed / CAM metrics and the CAM writer."""
from .cam_writer import CAMWriter
from .metrics import *  # noqa: F401,F403

__all__ = ['CAMWriter']
