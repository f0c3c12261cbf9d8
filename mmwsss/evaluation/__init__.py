"""mmwsss evaluation: seed / CAM metrics, the CAM writer, and the scores and tables
of confusion matrices shared by every evaluation (:mod:`.functional`)."""
from . import functional
from .cam_writer import CAMWriter
from .functional import (confusion_matrix, format_class_table, format_percent,
                         format_table, nanmean, per_class_scores,
                         percent_or_none, pixel_accuracy)
from .metrics import *  # noqa: F401,F403

__all__ = [
    'CAMWriter', 'functional', 'confusion_matrix', 'per_class_scores',
    'pixel_accuracy', 'nanmean', 'format_percent', 'percent_or_none',
    'format_table', 'format_class_table'
]
