from mmwsss.registry import DATASETS
from mmwsss.utils.io import voc_palette
from .toy_generator import TOY_CLASSES
from .voc_wsss import VOCWSSSDataset


@DATASETS.register_module()
class ToyWSSSDataset(VOCWSSSDataset):
    """The embedded toy dataset (VOC layout), made by
    ``python tools/misc/make_toy_dataset.py --out data/toy``.

    8 foreground classes, each a class-specific silhouette with a shared body texture
    and a small class-specific marker (see :mod:`mmwsss.datasets.toy_generator`).
    Saliency-like maps live in ``SaliencyMaps/``.
    """
    METAINFO = dict(
        classes=TOY_CLASSES,
        palette=voc_palette(len(TOY_CLASSES)).tolist())
