"""CAM folder (+ saliency) -> VOC-format pseudo-label PNGs, in parallel, resumable.

The work behind ``tools/make_pseudo_labels.py``: one task per image id, each reading its
CAM file (``docs/cam_format.md``), the image and the saliency map when the rule needs
them, applying a registered pseudo-label rule and writing ``<out_dir>/<img_id>.png``
(palette PNG: 0 background, 1..K classes, 255 ignore) atomically. A task depends only
on its own inputs, so the output is identical whatever the number of worker processes
and whether a run was interrupted and restarted (finished ids are skipped).

Degenerate results are detected (:func:`degenerate_labels_message`): every pixel of
every label is ignore (255), no pixel of any label is a foreground class, or (with
evaluation) no GT-labelled pixel is labelled; ``tools/make_pseudo_labels.py`` then
exits non-zero unless ``--allow-all-ignored``.
"""
import os
import os.path as osp
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmwsss.evaluation.functional import (confusion_matrix, nanmean,
                                          per_class_scores, pixel_accuracy,
                                          ratio)
from mmwsss.utils.cam_io import CAM_SUFFIX, cam_path, load_cam
from mmwsss.utils.io import (data_info_gt_path, data_info_id, decoding,
                             read_label_png, remove_stale_temp_files,
                             save_png_atomic, shown_ids, voc_palette)
from mmwsss.utils.process_pool import map_in_processes

__all__ = [
    'PseudoLabelTask', 'collect_tasks', 'run_pseudo_label_job',
    'pseudo_label_scores', 'read_rgb', 'read_saliency',
    'degenerate_labels_message'
]


@dataclass
class PseudoLabelTask:
    img_id: str
    cam_path: str
    out_path: str
    img_path: Optional[str] = None
    saliency_path: Optional[str] = None
    gt_path: Optional[str] = None



def read_rgb(path: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (a damaged file names itself)."""
    from PIL import Image
    with decoding(path, 'image'), Image.open(path) as img:
        return np.asarray(img.convert('RGB'), dtype=np.uint8).copy()


def read_saliency(path: str) -> np.ndarray:
    """A saliency map as (H, W) uint8 in [0, 255] (colour files are averaged)."""
    from PIL import Image
    with decoding(path, 'saliency map'), Image.open(path) as img:
        if img.mode not in ('L', 'P', 'I', 'I;16', 'F'):
            img = img.convert('L')
        arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def collect_tasks(dataset,
                  cam_dir: str,
                  out_dir: str,
                  saliency_dir: Optional[str] = None,
                  need_image: bool = False,
                  need_saliency: bool = False,
                  need_gt: bool = False) -> List[PseudoLabelTask]:
    """One task per image of ``dataset``; checks every input before any work.

    Raises:
        FileNotFoundError: the CAM folder, CAM files, images or saliency maps are
            missing (one error listing the ids and naming the folder and the fix).
        PermissionError: ``out_dir`` cannot be created or written.
    """
    if not osp.isdir(cam_dir):
        raise FileNotFoundError(
            f'CAM folder {cam_dir!r} does not exist: export the seeds first '
            '(tools/export_cams.py, tools/export_oaa_maps.py)')
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise PermissionError(
            f'cannot create the output folder {out_dir!r}: {e}') from e
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(
            f'the output folder {out_dir!r} is not writable: pick another --out '
            'or fix its permissions')
    present = set(os.listdir(cam_dir))
    tasks, no_cam, no_img, no_sal, no_gt = [], [], [], [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        img_id = data_info_id(info)
        cpath = cam_path(cam_dir, img_id)
        if (img_id + CAM_SUFFIX) not in present and not osp.isfile(cpath):
            no_cam.append(img_id)
        sal = None
        if need_saliency:
            if saliency_dir is not None:
                sal = osp.join(saliency_dir, img_id + '.png')
            else:
                sal = info.get('saliency_path')
            if sal is None or not osp.isfile(sal):
                no_sal.append(img_id)
        img = info.get('img_path')
        if need_image and (img is None or not osp.isfile(img)):
            no_img.append(img_id)
        gt = data_info_gt_path(info)
        if need_gt and (gt is None or not osp.isfile(gt)):
            no_gt.append(img_id)
        tasks.append(
            PseudoLabelTask(
                img_id=img_id,
                cam_path=cpath,
                out_path=osp.join(out_dir, img_id + '.png'),
                img_path=img,
                saliency_path=sal,
                gt_path=gt))
    n = len(tasks)
    if no_cam:
        raise FileNotFoundError(
            f'{len(no_cam)} of {n} image id(s) have no CAM file in {cam_dir!r}: '
            f'{shown_ids(no_cam)}. Export CAMs for every id of this split (or pick '
            'the split the CAMs were made for with --split)')
    if no_sal:
        where = (f'in {saliency_dir!r}' if saliency_dir is not None else
                 'under the dataset\'s data_prefix.saliency_path')
        raise FileNotFoundError(
            f'this rule needs saliency maps, but {len(no_sal)} of {n} id(s) have '
            f'none {where}: {shown_ids(no_sal)}. Give --saliency-dir DIR '
            '(<img_id>.png, 0-255) or set data_prefix.saliency_path')
    if no_img:
        raise FileNotFoundError(
            f'{len(no_img)} of {n} image(s) are missing: {shown_ids(no_img)} '
            f'(e.g. {tasks[0].img_path!r}); check data_root / data_prefix.img_path')
    if no_gt:
        raise FileNotFoundError(
            f'--eval needs GT masks but {len(no_gt)} of {n} id(s) have none: '
            f'{shown_ids(no_gt)}. Set data_prefix.seg_map_path or drop --eval')
    return tasks


# ----------------------------------------------------------------- workers
_WORKER: Dict = {}


def _init_worker(rule_cfg, num_classes: int, overwrite: bool,
                 evaluate: bool) -> None:
    from mmwsss.pseudo import build_pseudo_label_rule
    _WORKER.update(
        rule=build_pseudo_label_rule(rule_cfg),
        num_classes=num_classes,
        overwrite=overwrite,
        evaluate=evaluate,
        palette=voc_palette(),
        # once this process has met a foreground pixel the job cannot be
        # degenerate: existing labels need not be read just to count pixels
        seen_foreground=False)


def _confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int):
    """(K+1, K+1) confusion (rows GT) over pixels labelled in both, and the
    number of GT-labelled pixels the pseudo label ignores."""
    valid = gt != 255
    ignored = int((valid & (pred == 255)).sum())
    conf = confusion_matrix(pred, gt, num_classes + 1, ignore_index=255)
    return conf, ignored, int(valid.sum())


def _pixel_counts(label: np.ndarray) -> tuple:
    """(pixels not ignored, foreground pixels) of a label map."""
    labelled = label != 255
    return int(labelled.sum()), int((labelled & (label > 0)).sum())


def process_task(task: PseudoLabelTask) -> dict:
    """Make (or reuse) one pseudo label; returns counts for the summary.

    ``labelled`` / ``foreground``: pixels of the label that are not 255 / that are
    a class; None for an existing label that was not read (when this process has
    already met a foreground pixel and there is no evaluation)."""
    w = _WORKER
    num_classes = w['num_classes']
    written = False
    label = None
    if w['overwrite'] or not osp.isfile(task.out_path):
        rec = load_cam(task.cam_path)
        where = f'image {task.img_id!r} (CAM {task.cam_path!r})'
        if rec.num_classes != num_classes:
            raise ValueError(
                f'{where}: the CAM file has num_classes={rec.num_classes} but '
                f'the dataset has {num_classes} foreground classes; these CAMs '
                'belong to another dataset')
        if len(rec.labels) and (rec.labels.min() < 0
                                or rec.labels.max() >= num_classes):
            raise ValueError(
                f'{where}: class id {int(rec.labels.max())} is beyond '
                f'num_classes={num_classes}')
        rule = w['rule']
        image = saliency = None
        if task.img_path is not None and not rule.requires_image:
            from PIL import Image
            with decoding(task.img_path), Image.open(
                    task.img_path) as im:  # reads the header only
                size = (im.height, im.width)
            if size != rec.shape:
                raise ValueError(
                    f'{where}: CAM size {rec.shape} differs from the image '
                    f'{task.img_path!r} of size {size}; CAMs must be at the '
                    'original image size')
        if rule.requires_image:
            image = read_rgb(task.img_path)
            if image.shape[:2] != rec.shape:
                raise ValueError(
                    f'{where}: CAM size {rec.shape} differs from the image '
                    f'{task.img_path!r} of size {image.shape[:2]}; CAMs must be '
                    'at the original image size')
        if rule.requires_saliency:
            saliency = read_saliency(task.saliency_path)
            if saliency.shape[:2] != rec.shape:
                raise ValueError(
                    f'{where}: CAM size {rec.shape} differs from the saliency '
                    f'map {task.saliency_path!r} of size {saliency.shape[:2]}')
        try:
            label = rule(rec, image=image, saliency=saliency)
        except ValueError as e:
            raise ValueError(f'{where}: {e}') from e
        save_png_atomic(task.out_path, label.astype(np.uint8), w['palette'])
        written = True
    out = dict(img_id=task.img_id, written=written)
    if label is None and (w['evaluate'] or not w.get('seen_foreground')):
        label = read_label_png(task.out_path)
    if label is not None:
        out['labelled'], out['foreground'] = _pixel_counts(label)
        if out['foreground']:
            w['seen_foreground'] = True
    else:
        out['labelled'] = out['foreground'] = None
    if w['evaluate']:
        gt = read_label_png(task.gt_path)
        if gt.shape != label.shape:
            raise ValueError(
                f'image {task.img_id!r}: pseudo label size {label.shape} differs '
                f'from the GT mask {task.gt_path!r} of size {gt.shape}')
        try:
            out['confusion'], out['ignored'], out['valid'] = _confusion(
                label, gt, num_classes)
        except ValueError as e:  # a label value beyond the classes: name the files
            raise ValueError(
                f'image {task.img_id!r} (pseudo label {task.out_path!r}, GT mask '
                f'{task.gt_path!r}): {e}') from e
    return out


def pseudo_label_scores(confusion: np.ndarray, ignored: int, valid: int,
                        class_names: Sequence[str]) -> dict:
    """mIoU / precision / recall over the pixels the pseudo labels assign, and the
    share of GT-labelled pixels they ignore.

    The scores of :mod:`mmwsss.evaluation.functional` (NaN where undefined, mIoU
    over the defined classes, as MMSeg's ``IoUMetric``); fractions in [0, 1].
    """
    scores = per_class_scores(confusion)
    return dict(
        labelled_gt_pixels=int(confusion.sum()),
        mIoU=nanmean(scores['iou']),
        accuracy=pixel_accuracy(confusion),
        ignored_ratio=ratio(ignored, valid),
        **scores,
        class_names=list(class_names))


def _remove_temp_files(tasks: Sequence[PseudoLabelTask],
                       started: Optional[float] = None) -> None:
    """Delete the ``atomic_write`` temporary files of dead writers in the output
    folders; another run writing into the same folder keeps its own."""
    for folder in sorted({osp.dirname(t.out_path) for t in tasks}):
        remove_stale_temp_files(folder, suffix='.png', older_than=started)


def run_pseudo_label_job(tasks: Sequence[PseudoLabelTask],
                         rule_cfg,
                         num_classes: int,
                         class_names: Optional[Sequence[str]] = None,
                         workers: int = 1,
                         overwrite: bool = False,
                         evaluate: bool = False,
                         progress: bool = True) -> dict:
    """Make the pseudo labels of ``tasks`` with ``workers`` processes.

    Returns a summary: ``written``, ``skipped`` and, with ``evaluate``, the scores
    of :func:`pseudo_label_scores`. On any error (or Ctrl-C) the workers are stopped;
    every file already written is complete (atomic writes) and a re-run continues.
    """
    workers = max(1, int(workers))
    init_args = (rule_cfg, num_classes, overwrite, evaluate)
    # temporary files of a run that was killed (SIGKILL, power loss) are garbage
    started = time.time()
    _remove_temp_files(tasks, started)
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(tasks))
    results = []
    if workers == 1:
        _init_worker(*init_args)
        for t in tasks:
            results.append(process_task(t))
            if bar is not None:
                bar.update()
    else:
        try:
            results = map_in_processes(
                process_task,
                tasks,
                workers,
                initializer=_init_worker,
                initargs=init_args,
                callback=None if bar is None else (lambda _: bar.update()),
                describe=lambda t: f'image {t.img_id!r}')
        finally:
            # a worker stopped in the middle of a write leaves its temporary file;
            # every worker has exited here, so what is left is garbage
            _remove_temp_files(tasks, started)
    if bar is not None:
        print()
    summary = dict(
        num_images=len(tasks),
        written=sum(r['written'] for r in results),
        skipped=sum(not r['written'] for r in results))
    # None: some labels were not read because a foreground pixel was seen
    counted = [r for r in results if r.get('labelled') is not None]
    summary['labelled_pixels'] = sum(r['labelled'] for r in counted)
    summary['foreground_pixels'] = sum(r['foreground'] for r in counted)
    summary['all_ignored'] = bool(results) and len(counted) == len(
        results) and summary['labelled_pixels'] == 0
    summary['no_foreground'] = bool(results) and len(counted) == len(
        results) and summary['foreground_pixels'] == 0
    if evaluate:
        k1 = num_classes + 1
        conf = np.zeros((k1, k1), np.int64)
        ignored = valid = 0
        for r in results:
            conf += r['confusion']
            ignored += r['ignored']
            valid += r['valid']
        names = list(class_names) if class_names is not None else [
            str(i) for i in range(k1)
        ]
        summary['scores'] = pseudo_label_scores(conf, ignored, valid, names)
    return summary


def degenerate_labels_message(summary: dict,
                              out_dir: str,
                              rule_cfg=None,
                              cam_dir: Optional[str] = None) -> Optional[str]:
    """Why the pseudo labels of a job cannot be right, or None.

    The rules, in this order (the first that holds is reported):

    * every pixel of every label is ignore (255);
    * with evaluation: no pixel that has a GT label is labelled (the
      pseudo-label mIoU is undefined);
    * no pixel of any label is a foreground class (all background / ignore).

    Args:
        summary: the output of :func:`run_pseudo_label_job`.
        out_dir: the output folder (named in the message).
        rule_cfg: the pseudo-label rule (named in the message).
        cam_dir: the CAM folder (named in the message).
    """
    n = summary.get('num_images', 0)
    if not n:
        return None
    scores = summary.get('scores')
    if summary.get('all_ignored'):
        what = (f'every pixel of all {n} pseudo label(s) in {out_dir!r} is '
                'ignore (255)')
    elif scores is not None and scores.get('labelled_gt_pixels', 1) == 0:
        what = (f'the {n} pseudo label(s) in {out_dir!r} label no pixel that '
                'has a GT label (every GT-labelled pixel is 255 in them), so '
                'their mIoU is undefined')
    elif summary.get('no_foreground'):
        what = (f'no pixel of the {n} pseudo label(s) in {out_dir!r} is a '
                'foreground class (all background or ignore)')
    else:
        return None
    rule = f' by the rule {dict(rule_cfg)}' if rule_cfg else ''
    cams = f' {cam_dir!r}' if cam_dir else ''
    return (
        f'{what}: labels made{rule} from these seeds cannot train a segmentor. '
        f'Likely causes: empty CAMs{cams} (all-zero maps of an untrained model, '
        'the wrong checkpoint or the wrong CAM folder; check them with '
        'tools/eval_seeds.py), a threshold too high for these CAMs (the rule\'s '
        'threshold / fg_threshold / min_fg_ratio: --rule-options ...), or '
        'missing / empty saliency maps for a saliency rule (--saliency-dir, '
        'data_prefix.saliency_path). The labels written are complete files: '
        'fix the cause and re-run with --overwrite, or pass --allow-all-ignored '
        'to accept them')
