from typing import Optional

from mmwsss.registry import DATASETS
from .voc_wsss import VOCWSSSDataset

COCO_CLASSES = (
    'background', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus',
    'train', 'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag',
    'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
    'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
    'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush')


def _coco_palette(n):
    # deterministic, well-spread colours; background black
    pal = [[0, 0, 0]]
    for i in range(1, n):
        pal.append([(i * 67) % 256, (i * 151 + 40) % 256, (i * 199 + 90) % 256])
    return pal


@DATASETS.register_module()
class COCOWSSSDataset(VOCWSSSDataset):
    """MS-COCO 2014 for WSSS: 80 foreground classes + background (81 labels).

    Layout written by ``tools/dataset_converters/coco_wsss.py`` (docs/datasets.md)::

        data/coco2014/
          train2014/*.jpg  val2014/*.jpg          (the COCO images)
          SegmentationClass/{train2014,val2014}/<id>.png   (0 bg, 1..80, 255)
          ImageSets/{train,val}.txt                (ids with >= 1 object)
          cls_labels_coco.npy                      ({id: 80-dim multi-hot})

    Label ``c`` (1..80) is the c-th COCO category in increasing category-id order.
    Image-level labels come from the class-label file or the masks (there is no XML).
    The other ``data_prefix`` keys are those of :class:`VOCWSSSDataset` except
    ``xml_path`` (``cam_path`` / ``attention_path`` relative to the working
    directory).
    """
    METAINFO = dict(classes=COCO_CLASSES, palette=_coco_palette(len(COCO_CLASSES)))
    OPTIONAL_PREFIXES = ('seg_map_path', 'saliency_path', 'pseudo_label_path',
                         'cam_path', 'attention_path')
    SUPPORTED_LABEL_SOURCES = ('cls_file', 'mask')

    def __init__(self,
                 ann_file: str = 'ImageSets/train.txt',
                 cls_label_file: str = 'cls_labels_coco.npy',
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        if data_prefix is None:
            data_prefix = dict(
                img_path='train2014', seg_map_path='SegmentationClass/train2014')
        super().__init__(
            ann_file=ann_file,
            cls_label_file=cls_label_file,
            data_prefix=data_prefix,
            **kwargs)
