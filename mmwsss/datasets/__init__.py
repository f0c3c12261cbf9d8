from .coco_wsss import COCOWSSSDataset
from .samplers import StrongMixSampler
from .strong_subsets import (choose_strong_subsets, voc_box_masks,
                             write_strong_subsets)
from .toy_generator import TOY_CLASSES, make_toy_dataset
from .toy_wsss import ToyWSSSDataset
from .transforms import *  # noqa: F401,F403
from .voc_wsss import VOCWSSSDataset

__all__ = [
    'VOCWSSSDataset', 'COCOWSSSDataset', 'ToyWSSSDataset', 'make_toy_dataset',
    'TOY_CLASSES', 'StrongMixSampler', 'choose_strong_subsets',
    'write_strong_subsets', 'voc_box_masks'
]
