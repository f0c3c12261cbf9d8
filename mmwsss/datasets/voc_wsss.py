import logging
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmseg.datasets import BaseSegDataset

from mmwsss.registry import DATASETS
from mmwsss.utils.cam_io import cam_path
from mmwsss.utils.io import (MissingIdError, labels_from_mask, load_class_labels,
                             read_label_png, read_split_ids, read_voc_xml,
                             shown_ids, voc_xml_names)
from .strong_subsets import STRONG_KINDS

LABEL_SOURCES = ('cls_file', 'mask', 'xml')


@DATASETS.register_module()
class VOCWSSSDataset(BaseSegDataset):
    """PASCAL VOC 2012 / VOC12-aug for weakly supervised semantic segmentation.

    Every item carries its **image id** (the file stem, ``img_id``) and a **multi-hot
    image-level label** over the foreground classes (``gt_label``, float32 of length
    ``len(classes) - 1``; index ``c`` is segmentation label ``c + 1``).
    :class:`~mmwsss.datasets.transforms.PackWSSSInputs` puts them into
    ``data_sample.gt_label`` and ``data_sample.metainfo['img_id']`` (docs/datasets.md).

    The image-level labels come from one of three sources (``label_source``):

    * ``'cls_file'`` -- the WSSS class-label file (``cls_labels.npy`` of psa / irn /
      EDAM: ``{image id: 20-dim multi-hot}``; irn's integer ids are accepted too), or
      a ``.txt`` list of ``<image id> <0-based class index> ...`` lines: OAA's
      training list ``train_cls.txt`` (Jiang et al., TPAMI 2022; the labels the
      official OAA code trains with, which for some VOC12-aug images list fewer
      classes than the XML annotations, docs/datasets.md);
    * ``'mask'`` -- the classes present in the segmentation mask (``seg_map_path``);
    * ``'xml'`` -- all objects of the VOC XML annotation, *difficult ones included*
      (the convention of the WSSS lists; mmpretrain's VOC drops difficult objects).

    Optional per-image files, each enabled by a key of ``data_prefix``:

    * ``seg_map_path``: GT masks (seed / pseudo-label evaluation, supervised training);
    * ``saliency_path``: saliency maps (``<id>.png``), read by ``LoadSaliencyMap``;
    * ``pseudo_label_path``: pseudo labels (VOC-format PNGs). When set, the item's
      ``seg_map_path`` points at the pseudo label, so MMSeg's ``LoadAnnotations`` and any
      MMSeg segmentor train on it unchanged; the GT mask path (if any) moves to
      ``gt_seg_map_path``;
    * ``cam_path``: CAM files of the split (``<id>.npz``, docs/cam_format.md), read by
      ``LoadCAMFromFile`` (pseudo labels built on the fly);
    * ``attention_path``: the soft targets of the integral attention model (OAA+,
      OAA TPAMI paper §3.4, docs/methods/oaa.md: the exported OAA / OAA++ cumulative
      maps, ``<id>.npz``), read by ``LoadAttentionTargets``.

    ``cam_path`` and ``attention_path`` are outputs of earlier runs, not parts of the
    dataset: a **relative value is relative to the working directory** (like
    ``work_dir`` and the tools' ``--out``), not to ``data_root``; e.g.
    ``attention_path='work_dirs/oaa_vgg16_voc/oaa_maps'``. Every other key is relative
    to ``data_root`` (MMEngine's rule). Their files are verified at start-up when a
    transform of the dataset's pipeline reads them: a dataset built without such a
    transform (CAM export with ``cam_pipeline``, the offline tools, which build it
    with an empty pipeline) does not need them.

    **Strong subsets** (GAIN_ext; Li et al., "Tell Me Where to Look: Guided
    Attention Inference Network", CVPR 2018, §3.2-3.3): ``strong_subsets=dict(
    pixel='ImageSets/GAIN/pixel_200.txt', box='ImageSets/GAIN/box_200.txt')`` names
    id lists (relative to ``data_root``; either key may be left out) of images that
    also have pixel masks or boxes. Every item then carries the flags
    ``strong_pixel`` / ``strong_box``; a pixel item needs its GT mask
    (``data_prefix.seg_map_path``), a box item its boxes (read from the VOC XML,
    ``data_prefix.xml_path``, default ``Annotations``: ``boxes``, ``box_labels``,
    ``box_difficult``, ``box_ann_size``) and a saliency map
    (``data_prefix.saliency_path``, GAIN's Eq. 9). The transform
    :class:`~mmwsss.datasets.transforms.LoadExtraSupervision` loads them for the
    flagged images only and :class:`~mmwsss.datasets.samplers.StrongMixSampler`
    puts strong images into every batch (docs/datasets.md).

    Args:
        ann_file (str): split list, relative to ``data_root`` (one id per line; psa's
            ``/JPEGImages/<id>.jpg ...`` and OAA's ``<id> <cls> ...`` lines work too).
        label_source (str): ``'cls_file'``, ``'mask'`` or ``'xml'``.
        cls_label_file (str): class-label file (``.npy`` dict or ``.txt`` list),
            relative to ``data_root``.
        data_prefix (dict): folders relative to ``data_root``: ``img_path``
            (required) and optional ``seg_map_path``, ``saliency_path``,
            ``pseudo_label_path``, ``xml_path``; and the run outputs ``cam_path``,
            ``attention_path``, relative to the working directory (a ``None``
            value disables a key).
        check_files (bool): verify at start-up that every id of the split has its
            image (and mask / saliency / pseudo label / CAM / attention targets when
            enabled; the last two when the pipeline reads them). Defaults to True.
        strong_subsets (dict, optional): ``{'pixel': FILE, 'box': FILE}``, id lists
            relative to ``data_root`` of the images with pixel masks / boxes
            (GAIN_ext); ``tools/misc/make_strong_subsets.py`` writes them. Every id
            must be in the split and no id in both lists. None (default): no item
            carries the flags.
        **kwargs: passed to :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(
        classes=('background', 'aeroplane', 'bicycle', 'bird', 'boat',
                 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
                 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
                 'sofa', 'train', 'tvmonitor'),
        palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                 [0, 0, 128], [128, 0, 128], [0, 128, 128], [128, 128, 128],
                 [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0],
                 [64, 0, 128], [192, 0, 128], [64, 128, 128], [192, 128, 128],
                 [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0],
                 [0, 64, 128]])
    OPTIONAL_PREFIXES = ('seg_map_path', 'saliency_path', 'pseudo_label_path',
                         'xml_path', 'cam_path', 'attention_path')
    #: data_prefix keys of run outputs: relative values are relative to the working
    #: directory, not joined with ``data_root`` (see :meth:`_join_prefix`)
    WORK_DIR_PREFIXES = ('cam_path', 'attention_path')
    SUPPORTED_LABEL_SOURCES = LABEL_SOURCES

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/train.txt',
                 label_source: str = 'cls_file',
                 cls_label_file: str = 'cls_labels.npy',
                 data_prefix: Optional[dict] = None,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 check_files: bool = True,
                 data_root: Optional[str] = None,
                 strong_subsets: Optional[dict] = None,
                 **kwargs) -> None:
        if label_source not in self.SUPPORTED_LABEL_SOURCES:
            raise ValueError(
                f'{type(self).__name__}: label_source={label_source!r} is not '
                f'one of {self.SUPPORTED_LABEL_SOURCES}')
        if data_root is not None and not osp.isdir(data_root):
            raise FileNotFoundError(
                f'{type(self).__name__}: data_root {data_root!r} does not exist. '
                'Prepare the dataset (docs/datasets.md; toy data: `python '
                'tools/misc/make_toy_dataset.py --out data/toy`) or set '
                '`data_root` in the dataset config.')
        if data_prefix is None:
            data_prefix = dict(
                img_path='JPEGImages', seg_map_path='SegmentationClass')
        data_prefix = {k: v for k, v in data_prefix.items() if v is not None}
        if 'img_path' not in data_prefix:
            raise ValueError(
                f'{type(self).__name__}: data_prefix needs an `img_path` folder')
        unknown = set(data_prefix) - {'img_path', *self.OPTIONAL_PREFIXES}
        if unknown:
            raise ValueError(
                f'{type(self).__name__}: unknown data_prefix keys {sorted(unknown)}'
                f'; allowed: img_path, {", ".join(self.OPTIONAL_PREFIXES)}')
        if label_source == 'mask' and 'seg_map_path' not in data_prefix:
            raise ValueError(
                f"{type(self).__name__}: label_source='mask' needs "
                'data_prefix.seg_map_path (the GT mask folder)')
        if label_source == 'xml':
            data_prefix.setdefault('xml_path', 'Annotations')
        self.strong_subsets = self._check_strong_subsets(
            strong_subsets, data_prefix, data_root)
        self.label_source = label_source
        self.cls_label_file = cls_label_file
        self.check_files = check_files
        if (data_root is not None and cls_label_file
                and not osp.isabs(cls_label_file)):
            self.cls_label_file = osp.join(data_root, cls_label_file)
        super().__init__(
            ann_file=ann_file,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_root=data_root,
            **kwargs)

    # ------------------------------------------------------------------ helpers
    def _join_prefix(self) -> None:
        """MMEngine's join of ``data_root`` with ``ann_file`` and the ``data_prefix``
        folders, except for :attr:`WORK_DIR_PREFIXES` (``cam_path``,
        ``attention_path``): those are outputs of earlier runs (``work_dirs/...``), so
        a relative value stays relative to the working directory, as ``work_dir``
        and the tools' ``--out`` are."""
        kept = {
            k: self.data_prefix.pop(k)
            for k in self.WORK_DIR_PREFIXES if k in self.data_prefix
        }
        for key, value in kept.items():
            if not isinstance(value, str):
                raise TypeError(
                    f'{type(self).__name__}: data_prefix.{key} must be a folder '
                    f'path (str), got {type(value).__name__}: {value!r}')
        super()._join_prefix()
        self.data_prefix.update(kept)

    @property
    def num_fg_classes(self) -> int:
        return len(self._metainfo['classes']) - 1

    def _check_strong_subsets(self, strong_subsets: Optional[dict],
                              data_prefix: dict,
                              data_root: Optional[str]) -> dict:
        """Validate ``strong_subsets`` (and set ``data_prefix.xml_path`` to
        ``Annotations`` for boxes); returns ``{kind: file}`` joined with
        ``data_root``."""
        name = type(self).__name__
        if strong_subsets is None:
            return {}
        if not isinstance(strong_subsets, dict):
            raise TypeError(
                f'{name}: strong_subsets must be a dict like dict(pixel='
                "'ImageSets/GAIN/pixel_200.txt', box='ImageSets/GAIN/box_200.txt'),"
                f' got {type(strong_subsets).__name__}: {strong_subsets!r}')
        unknown = sorted(set(strong_subsets) - set(STRONG_KINDS))
        if unknown:
            raise ValueError(
                f'{name}: unknown strong_subsets keys {unknown}; allowed: '
                f'{", ".join(STRONG_KINDS)}')
        files = {}
        for kind in STRONG_KINDS:
            path = strong_subsets.get(kind)
            if path is None:
                continue
            if not isinstance(path, str) or not path:
                raise TypeError(
                    f'{name}: strong_subsets.{kind} must be the path of an id list '
                    f'(str), got {path!r}')
            if data_root is not None and not osp.isabs(path):
                path = osp.join(data_root, path)
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{name}: the id list {path!r} (strong_subsets.{kind}) does not '
                    'exist; write it with tools/misc/make_strong_subsets.py '
                    '(docs/datasets.md) or fix the path (relative to data_root)')
            files[kind] = path
        if 'pixel' in files and 'seg_map_path' not in data_prefix:
            raise ValueError(
                f'{name}: strong_subsets.pixel needs the GT masks of its images: '
                'set data_prefix.seg_map_path (e.g. SegmentationClassAug)')
        if 'box' in files:
            if 'xml_path' not in self.OPTIONAL_PREFIXES:
                raise ValueError(
                    f'{name}: strong_subsets.box needs VOC XML box annotations '
                    '(data_prefix.xml_path), which this dataset does not have')
            if 'saliency_path' not in data_prefix:
                raise ValueError(
                    f'{name}: strong_subsets.box needs saliency maps for its images '
                    "(GAIN's box loss matches the attention to the saliency inside "
                    'the boxes): set data_prefix.saliency_path')
            data_prefix.setdefault('xml_path', 'Annotations')
        return files

    def _mark_strong_items(self, ids: List[str], items: List[dict]) -> None:
        """Set ``strong_pixel`` / ``strong_box`` on every item and read the boxes
        of the box items from their XML files."""
        position = {i: n for n, i in enumerate(ids)}
        chosen = {}
        for kind, path in self.strong_subsets.items():
            try:
                listed = read_split_ids(path)
            except ValueError as e:
                raise ValueError(f'{type(self).__name__}: strong_subsets.{kind}: '
                                 f'{e}') from None
            missing = sorted({i for i in listed if i not in position})
            if missing:
                shown = shown_ids(missing)
                raise MissingIdError(
                    f'{type(self).__name__}: {len(missing)} id(s) of the id list '
                    f'{path!r} (strong_subsets.{kind}) are not in the split '
                    f'{self.ann_file!r}: {shown}. Make the subset from ids of this '
                    'split (tools/misc/make_strong_subsets.py) or remove them')
            chosen[kind] = set(listed)
        both = sorted(chosen.get('pixel', set()) & chosen.get('box', set()))
        if both:
            shown = shown_ids(both)
            raise ValueError(
                f'{type(self).__name__}: {len(both)} id(s) are in both '
                f"strong_subsets.pixel ({self.strong_subsets['pixel']!r}) and "
                f"strong_subsets.box ({self.strong_subsets['box']!r}): {shown}. "
                'An image has pixel masks or boxes, not both (b+p subsets are '
                'disjoint halves)')
        for kind in STRONG_KINDS:
            for it in items:
                it[f'strong_{kind}'] = it['img_id'] in chosen.get(kind, ())
        names = list(self._metainfo['classes'])
        for it in items:
            if it['strong_box']:
                it.update(self._read_boxes(it['xml_path'], names))

    @staticmethod
    def _read_boxes(xml_path: str, names: List[str]) -> dict:
        """The boxes of one VOC XML file as data-info fields."""
        ann = read_voc_xml(xml_path)
        boxes, labels, difficult = [], [], []
        for obj in ann['objects']:
            name = obj['name']
            if name not in names or names.index(name) == 0:
                raise ValueError(
                    f'{xml_path}: object class {name!r} is not one of the dataset '
                    f'classes {names[1:]}')
            if obj['bbox'] is None:
                raise ValueError(
                    f'{xml_path}: object {name!r} has no readable <bndbox> '
                    '(xmin, ymin, xmax, ymax); strong_subsets.box needs a box for '
                    'every object')
            x1, y1, x2, y2 = obj['bbox']
            if x2 < x1 or y2 < y1:
                raise ValueError(
                    f'{xml_path}: object {name!r} has an empty box '
                    f'{obj["bbox"]} (xmax < xmin or ymax < ymin)')
            boxes.append(obj['bbox'])
            labels.append(names.index(name) - 1)
            difficult.append(obj['difficult'])
        return dict(
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
            box_labels=np.asarray(labels, np.int64),
            box_difficult=np.asarray(difficult, bool),
            box_ann_size=ann['size'])

    def _check_classes(self) -> None:
        if self.label_map is not None:
            raise ValueError(
                f'{type(self).__name__}: changing `metainfo.classes` is not '
                'supported for WSSS datasets (image-level labels would no longer '
                'match); subclass the dataset with its own METAINFO instead')

    def _missing_error(self, what: str, ids: List[str], folder: str,
                       fix: str, prefix_key: Optional[str] = None
                       ) -> FileNotFoundError:
        shown = shown_ids(ids)
        key = f' (data_prefix.{prefix_key})' if prefix_key else ''
        return FileNotFoundError(
            f'{type(self).__name__}: {len(ids)} id(s) of the split '
            f'{self.ann_file!r} have no {what} in {folder!r}{key}: {shown}. {fix}')

    def _image_labels(self, ids: List[str], items: List[dict]) -> List[np.ndarray]:
        k = self.num_fg_classes
        if self.label_source == 'cls_file':
            table = load_class_labels(self.cls_label_file, num_classes=k)
            if table.num_classes != k:
                raise ValueError(
                    f'class-label file {self.cls_label_file!r} has '
                    f'{table.num_classes}-dim vectors but {type(self).__name__} '
                    f'has {k} foreground classes: use the class-label file made '
                    'for this dataset')
            missing = [i for i in ids if i not in table]
            if missing:
                shown = shown_ids(missing)
                raise MissingIdError(
                    f'{len(missing)} image id(s) of the split {self.ann_file!r} '
                    f'are missing from the class-label file '
                    f'{self.cls_label_file!r}: {shown}. Regenerate the file '
                    "(tools/dataset_converters/) or use label_source='mask'/'xml'")
            return [table[i] for i in ids]
        if self.label_source == 'mask':
            return [
                labels_from_mask(
                    read_label_png(it['gt_seg_map_path']), k,
                    self.ignore_index, source=it['gt_seg_map_path'])
                for it in items
            ]
        # xml
        names = list(self._metainfo['classes'])
        out = []
        for it in items:
            vec = np.zeros(k, np.float32)
            for name in voc_xml_names(it['xml_path']):
                if name not in names or names.index(name) == 0:
                    raise ValueError(
                        f"{it['xml_path']}: object class {name!r} is not one of "
                        f'the dataset classes {names[1:]}')
                vec[names.index(name) - 1] = 1
            out.append(vec)
        return out

    # ----------------------------------------------------------------- loading
    def load_data_list(self) -> List[dict]:
        self._check_classes()
        ids = read_split_ids(self.ann_file)
        prefix = self.data_prefix
        items = []
        for img_id in ids:
            it = dict(
                img_id=img_id,
                img_path=osp.join(prefix['img_path'], img_id + self.img_suffix),
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[])
            if 'seg_map_path' in prefix:
                it['gt_seg_map_path'] = osp.join(prefix['seg_map_path'],
                                                 img_id + self.seg_map_suffix)
            if 'saliency_path' in prefix:
                it['saliency_path'] = osp.join(prefix['saliency_path'],
                                               img_id + '.png')
            if 'pseudo_label_path' in prefix:
                it['pseudo_label_path'] = osp.join(prefix['pseudo_label_path'],
                                                   img_id + '.png')
            if 'xml_path' in prefix:
                it['xml_path'] = osp.join(prefix['xml_path'], img_id + '.xml')
            for key in self.WORK_DIR_PREFIXES:
                if key in prefix:
                    it[key] = cam_path(prefix[key], img_id)
            # what LoadAnnotations reads: the pseudo label if given, else the GT
            seg = it.get('pseudo_label_path', it.get('gt_seg_map_path'))
            if seg is not None:
                it['seg_map_path'] = seg
            items.append(it)
        if self.check_files:
            self._check_item_files(ids, items)
        for it, vec in zip(items, self._image_labels(ids, items)):
            it['gt_label'] = vec
        if self.strong_subsets:
            self._mark_strong_items(ids, items)
        self._warn_label_less(items)
        return items

    def _warn_label_less(self, items: List[dict]) -> None:
        """Say which images have no foreground class and what happens to them."""
        empty = [it['img_id'] for it in items if not np.any(it['gt_label'])]
        if not empty:
            return
        from mmengine.logging import print_log
        shown = shown_ids(empty)
        print_log(
            f'{type(self).__name__}: {len(empty)} image(s) of {self.ann_file!r} have '
            f'no foreground class ({shown}). Classifiers train on them as negatives '
            'for every class; their CAM files hold no map (K = 0), so their seeds '
            'and pseudo labels are all background.', logger='current',
            level=logging.WARNING)

    #: what writes the files of the run-output keys (the fix named by a check error)
    WORK_DIR_PREFIX_FIXES = dict(
        cam_path=('CAM file', 'CAM folder',
                  'Export the CAMs of this split first (tools/export_cams.py CONFIG '
                  'CHECKPOINT --out DIR; OAA maps: the OAAHook of an OAA run writes '
                  '<work_dir>/oaa_maps, tools/export_oaa_maps.py CHECKPOINT --out DIR '
                  'exports them from a checkpoint) and set data_prefix.cam_path=DIR.'),
        attention_path=(
            'attention target', 'attention-target folder',
            'These are the cumulative maps of an OAA / OAA++ run (its OAAHook '
            'writes <work_dir>/oaa_maps after training; tools/export_oaa_maps.py '
            'CHECKPOINT --out DIR exports them from any checkpoint): train that run '
            'first, or point data_prefix.attention_path at its maps (the OAA+ '
            'configs: --cfg-options attention_targets=DIR).'),
    )

    def prefixes_read_by_pipeline(self) -> set:
        """The :attr:`WORK_DIR_PREFIXES` keys whose files a transform of the
        pipeline reads from ``results`` (``LoadCAMFromFile`` / ``LoadAttentionTargets``
        without a ``cam_dir`` override declare it with ``reads_data_prefix``)."""
        keys = set()

        def walk(obj, depth=0):
            if depth > 8:
                return
            key = getattr(obj, 'reads_data_prefix', None)
            if isinstance(key, str):
                keys.add(key)
            for attr in ('transforms', 'subroutines'):
                children = getattr(obj, attr, None)
                if isinstance(children, (list, tuple)):
                    for child in children:
                        walk(child, depth + 1)
                elif children is not None and children is not obj:
                    walk(children, depth + 1)

        walk(getattr(self, 'pipeline', None))
        return keys

    def _check_item_files(self, ids: List[str], items: List[dict]) -> None:
        checks = [
            ('img_path', 'image', 'img_path',
             'Remove these ids from the split list or restore the images.'),
            ('gt_seg_map_path', 'GT mask', 'seg_map_path',
             'Remove data_prefix.seg_map_path if the split has no masks.'),
            ('saliency_path', 'saliency map', 'saliency_path',
             'Generate saliency maps for every id or drop data_prefix.'
             'saliency_path.'),
            ('pseudo_label_path', 'pseudo label', 'pseudo_label_path',
             'Run the pseudo-label tool for this split first.'),
            ('xml_path', 'XML annotation', 'xml_path',
             "Use label_source='cls_file' or 'mask' if there are no XML files."),
        ]
        read = self.prefixes_read_by_pipeline()
        for key in self.WORK_DIR_PREFIXES:
            if key in read:
                what, _, fix = self.WORK_DIR_PREFIX_FIXES[key]
                checks.append((key, what, key, fix))
        for key, what, prefix_key, fix in checks:
            if not items or key not in items[0]:
                continue
            folder = self.data_prefix[prefix_key]
            try:
                present = set(os.listdir(folder))
            except FileNotFoundError:
                if prefix_key in self.WORK_DIR_PREFIX_FIXES:
                    _, kind, fix = self.WORK_DIR_PREFIX_FIXES[prefix_key]
                    where = ('' if osp.isabs(folder) else
                             f', relative to the working directory {os.getcwd()!r}')
                    raise FileNotFoundError(
                        f'{type(self).__name__}: the {kind} {folder!r} '
                        f'(data_prefix.{prefix_key}{where}) does not exist. '
                        f'{fix}') from None
                raise FileNotFoundError(
                    f'{type(self).__name__}: the {what} folder {folder!r} '
                    f'(data_prefix.{prefix_key}) does not exist') from None
            missing = [
                i for i, it in zip(ids, items)
                if osp.basename(it[key]) not in present
            ]
            if missing:
                raise self._missing_error(
                    what, missing, folder, fix,
                    prefix_key if prefix_key in self.WORK_DIR_PREFIXES else None)

    def filter_data(self) -> List[dict]:
        """``filter_cfg=dict(skip_ids_with_file_in=DIR, file_suffix='.npz')`` drops
        the ids that already have ``DIR/<id><suffix>`` (resumable exports)."""
        if not self.filter_cfg:
            return self.data_list
        cfg = dict(self.filter_cfg)
        folder = cfg.pop('skip_ids_with_file_in', None)
        suffix = cfg.pop('file_suffix', '.npz')
        if cfg:
            raise ValueError(f'{type(self).__name__}: unknown filter_cfg keys '
                             f'{sorted(cfg)}; allowed: skip_ids_with_file_in, '
                             'file_suffix')
        if folder is None or not osp.isdir(folder):
            return self.data_list
        present = set(os.listdir(folder))
        return [
            it for it in self.data_list if it['img_id'] + suffix not in present
        ]

    def prepare_data(self, idx):
        """Run the pipeline; an error names the image id, its file and the transform
        that failed. Only a failure while *reading* a file (a ``Load*`` transform)
        suggests the file may be corrupt."""
        data = self.get_data_info(idx)
        transforms = getattr(self.pipeline, 'transforms', None)
        if transforms is None:  # not an MMCV Compose: no per-transform report
            transforms = [self.pipeline]
        for t in transforms:
            try:
                data = t(data)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:
                raise self._pipeline_error(idx, t, e) from e
            if data is None:
                return None
        return data

    def _pipeline_error(self, idx, transform, e: Exception) -> Exception:
        info = self.get_data_info(idx)
        name = type(transform).__name__
        module = type(transform).__module__.split('.')[0]
        where = f'{module}.{name}' if module != 'mmwsss' else name
        if name.startswith('Load'):
            fix = (f'If the file is corrupt, re-extract it or remove the id from '
                   f'{self.ann_file!r}.')
        else:
            fix = ('The files were read; the error is in this transform or its '
                   'settings in the config pipeline.')
        msg = (f'{type(self).__name__}: image id {info.get("img_id")!r} '
               f'({info.get("img_path")}): transform {where} failed with '
               f'{type(e).__name__}: {e}. {fix}')
        try:
            return type(e)(msg)
        except Exception:  # exception types with other signatures
            return RuntimeError(msg)
