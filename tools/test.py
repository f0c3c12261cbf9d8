"""Test (and evaluate) a checkpoint (MMSeg-compatible flags).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show-dir DIR] [--tta] [--metrics-out FILE.json]
        [--cfg-options k=v ...] [--launcher ...]
"""
import argparse
import json
import os

import mmwsss  # noqa: F401  (compat shims before mmseg/mmpretrain/Runner)
from mmwsss.utils import register_all_modules
from mmwsss.utils.cli import run_tool
from mmwsss.utils.launch import (add_common_args, load_config,
                                 parse_common, run)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a model (mmwsss)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='directory to save the predictions for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir', help='directory where painted images are saved')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    parser.add_argument(
        '--metrics-out', help='write the evaluation metrics to this JSON file')
    add_common_args(
        parser, work_dir_help='the dir where evaluation results are dumped')
    return parse_common(parser)


def set_output_dir(cfg, out_dir):
    """``--out``: every IoUMetric of ``test_evaluator`` becomes
    :class:`mmwsss.evaluation.PaletteIoUMetric` (MMSeg's metric, writing the
    predicted labels to ``out_dir`` as VOC palette PNGs)."""
    evaluators = cfg.test_evaluator
    evaluators = evaluators if isinstance(evaluators, list) else [evaluators]
    hits = [e for e in evaluators if e.get('type') in ('IoUMetric', 'mmseg.IoUMetric')]
    if not hits:
        raise ValueError(
            '--out needs an IoUMetric in test_evaluator (it writes the predicted '
            f'label maps); this config has {[e.get("type") for e in evaluators]}. '
            'For CAM files use tools/export_cams.py --out')
    for e in hits:
        e['type'] = 'mmwsss.PaletteIoUMetric'
        e['output_dir'] = out_dir
        e['keep_results'] = True


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            '--show/--show-dir need a `visualization` hook in default_hooks, '
            "e.g. visualization=dict(type='SegVisualizationHook')")
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def _jsonable(obj):
    """Metrics as JSON types (numpy / torch scalars and arrays included)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, 'tolist'):
        return obj.tolist()
    if hasattr(obj, 'item'):
        return obj.item()
    return obj


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        if 'tta_pipeline' not in cfg or 'tta_model' not in cfg:
            raise KeyError('--tta needs `tta_pipeline` and `tta_model` in the '
                           'config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        set_output_dir(cfg, args.out)
    metrics = run(cfg, 'test')
    # the process group is gone after run(): the launcher's RANK tells rank 0
    if args.metrics_out and os.environ.get('RANK', '0') == '0':
        from mmwsss.utils.io import atomic_write
        with atomic_write(args.metrics_out, 'w') as f:
            json.dump(_jsonable(metrics or {}), f, indent=2)


if __name__ == '__main__':
    run_tool(main)
