"""Export CAMs (the project's CAM file format) of a trained classifier.

    python tools/export_cams.py CONFIG CHECKPOINT --out CAM_DIR [--split train]
        [--overwrite] [--cfg-options k=v ...] [--launcher pytorch]
    tools/dist_export_cams.sh CONFIG CHECKPOINT NGPUS --out CAM_DIR ...

Existing CAM files are skipped unless --overwrite (an interrupted export resumes); a
damaged one (empty or truncated) is computed again, and temporary files of a killed
export are removed (those of an export still running into the same folder are kept).
CAM inference options (scales, flip, fusion, class restriction) are `model.test_cfg`.
"""
import argparse
import time

import mmwsss  # noqa: F401  (compat shims before mmseg/mmpretrain/Runner)
from mmwsss.evaluation.cam_export import (pending_ids, prepare_export_cfg,
                                          repair_cam_dir)
from mmwsss.utils import register_all_modules
from mmwsss.utils.cli import run_tool
from mmwsss.utils.launch import (add_common_args, load_config,
                                 parse_common, run)


def parse_args():
    p = argparse.ArgumentParser(description='Export CAMs (mmwsss)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out', required=True, help='CAM folder')
    p.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    p.add_argument('--overwrite', action='store_true',
                   help='recompute CAM files that already exist')
    p.add_argument('--batch-size', type=int, default=1)
    add_common_args(p)
    return parse_common(p)


def main():
    started = time.time()
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    cfg = prepare_export_cfg(cfg, args.checkpoint, args.out, args.split,
                             args.overwrite, args.batch_size)
    fixed = repair_cam_dir(cfg.test_dataloader.dataset, args.out, started)
    if fixed['temp_files']:
        print(f'removed {fixed["temp_files"]} temporary file(s) of an interrupted '
              f'export from {args.out}')
    if fixed['redone']:
        shown = ', '.join(fixed['redone'][:5])
        print(f'{len(fixed["redone"])} damaged CAM file(s) (empty or truncated) will '
              f'be computed again: {shown}' +
              (' ...' if len(fixed['redone']) > 5 else ''))
    if not args.overwrite:
        todo = pending_ids(cfg.test_dataloader.dataset, args.out)
        if not todo:
            print(f'all CAM files of the {args.split} split already exist in '
                  f'{args.out} (use --overwrite to recompute)')
            return
        print(f'{len(todo)} CAM files to compute (existing ones are skipped)')
    run(cfg, 'test')


if __name__ == '__main__':
    run_tool(main)
