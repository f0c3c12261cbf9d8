"""Train a model from a config (MMSeg-compatible flags).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Without CUDA, distributed launches (tools/dist_train.sh) use the gloo backend.
"""
import argparse

import mmwsss  # noqa: F401  (compat shims before mmseg/mmpretrain/Runner)
from mmwsss.utils import register_all_modules
from mmwsss.utils.cli import run_tool
from mmwsss.utils.launch import (add_common_args, apply_resume,
                                 check_load_from, enable_amp,
                                 load_config, parse_common, run)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model (mmwsss)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the latest checkpoint in the work_dir (load_from is '
        'ignored), or from the given checkpoint file')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (GPU only)')
    add_common_args(parser)
    return parse_common(parser)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    if args.amp:
        enable_amp(cfg)
    apply_resume(cfg, args.resume)
    if not cfg.resume:
        check_load_from(cfg, args.config)
    run(cfg, 'train')


if __name__ == '__main__':
    run_tool(main)
