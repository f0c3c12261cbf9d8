"""Train a model from a config (MMSeg-compatible flags).

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Without CUDA, distributed launches (tools/dist_train.sh) use the gloo backend.
"""
import argparse
import os

from mmengine.config import DictAction

import mmwsss  # noqa: F401  (compat shims before mmseg/mmpretrain/Runner)
from mmwsss.utils import register_all_modules
from mmwsss.utils.launch import (build_runner, enable_amp, load_config,
                                 setup_device, teardown_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model (mmwsss)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (GPU only)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs '
        '(e.g. train_cfg.max_iters=100 "a.b=[1,2]")')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    if args.amp:
        enable_amp(cfg)
    cfg.resume = args.resume
    setup_device(cfg)
    runner = build_runner(cfg)
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
