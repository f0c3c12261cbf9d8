"""Config surgery for exporting CAMs with the standard Runner (tools/export_cams.py)."""
import copy
import os.path as osp

from mmengine.config import Config, ConfigDict

from mmwsss.utils.cam_io import cam_path
from mmwsss.utils.io import read_split_ids

SPLIT_KEYS = ('train', 'val', 'test')


def pending_ids(dataset_cfg: dict, out_dir: str) -> list:
    """Ids of the dataset's split list that have no CAM file in ``out_dir`` yet."""
    ann = dataset_cfg.get('ann_file', '')
    root = dataset_cfg.get('data_root')
    if root and not osp.isabs(ann):
        ann = osp.join(root, ann)
    return [
        i for i in read_split_ids(ann)
        if not osp.isfile(cam_path(out_dir, i))
    ]


def repair_cam_dir(dataset_cfg: dict, out_dir: str, started: float) -> dict:
    """Make a re-run of an export redo what a killed or damaged run left behind.

    * temporary files of dead writers (``atomic_write`` of a killed export) are
      deleted; those of a run still writing into the folder are kept;
    * a CAM file of the split that exists but cannot be a complete file -- zero bytes
      or not a zip archive (a truncated copy, a full disk outside mmwsss) -- is
      deleted, so that the export computes it again instead of skipping it.

    Returns ``dict(temp_files=N, redone=[ids])``.
    """
    import contextlib
    import os
    import zipfile

    from mmwsss.utils.io import remove_stale_temp_files
    temp = remove_stale_temp_files(out_dir, suffix='.npz', older_than=started)
    redone = []
    if osp.isdir(out_dir):
        ann = dataset_cfg.get('ann_file', '')
        root = dataset_cfg.get('data_root')
        if root and not osp.isabs(ann):
            ann = osp.join(root, ann)
        present = set(os.listdir(out_dir))
        for i in read_split_ids(ann):
            path = cam_path(out_dir, i)
            if osp.basename(path) not in present:
                continue
            with contextlib.suppress(FileNotFoundError):
                if os.path.getsize(path) == 0 or not zipfile.is_zipfile(path):
                    os.remove(path)
                    redone.append(i)
    return dict(temp_files=temp, redone=redone)


def prepare_export_cfg(cfg: Config,
                       checkpoint: str,
                       out_dir: str,
                       split: str = 'train',
                       overwrite: bool = False,
                       batch_size: int = 1) -> Config:
    """Turn a classifier config into a CAM-export run over ``split``.

    * the dataset of ``{split}_dataloader`` is used with ``cfg.cam_pipeline`` (or
      ``cfg.test_pipeline``) and, unless ``overwrite``, skips ids whose CAM file
      already exists (resumable);
    * ``test_evaluator`` is a :class:`~mmwsss.evaluation.CAMWriter` on ``out_dir``;
    * the checkpoint is loaded with ``load_from``.
    """
    if split not in SPLIT_KEYS:
        raise ValueError(f'--split must be one of {SPLIT_KEYS}, got {split!r}')
    key = f'{split}_dataloader'
    if key not in cfg or cfg[key] is None:
        raise KeyError(f'the config has no {key} to export CAMs for')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    dataset = copy.deepcopy(cfg[key]['dataset'])
    pipeline = cfg.get('cam_pipeline', cfg.get('test_pipeline'))
    if pipeline is None:
        raise KeyError('the config needs `cam_pipeline` or `test_pipeline` for '
                       'CAM export')
    dataset['pipeline'] = copy.deepcopy(pipeline)
    dataset['test_mode'] = True
    if not overwrite:
        dataset['filter_cfg'] = dict(
            skip_ids_with_file_in=out_dir, file_suffix='.npz')
    cfg.test_dataloader = ConfigDict(
        batch_size=batch_size,
        num_workers=cfg[key].get('num_workers', 0),
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dataset)
    cfg.test_evaluator = ConfigDict(type='CAMWriter', out_dir=out_dir)
    cfg.test_cfg = ConfigDict(type='TestLoop')
    cfg.load_from = checkpoint
    # the visualisation hook expects segmentation predictions
    if 'default_hooks' in cfg and 'visualization' in cfg.default_hooks:
        cfg.default_hooks.pop('visualization')
    return cfg
