"""Evaluate CAM seeds (a folder of CAM files) against the GT masks of a dataset split,
for a sweep of background thresholds in one pass.

    python tools/eval_seeds.py CAM_DIR CONFIG [--split train|val|test]
        [--thresholds 0.05 0.1 ...] [--out results.json] [--cfg-options k=v ...]

The dataset is ``cfg[f'{split}_dataloader'].dataset`` (it must have GT masks:
``data_prefix.seg_map_path``). Every id of the split needs ``CAM_DIR/<img_id>.npz``
(mmwsss/utils/cam_io.py). Prints the mIoU per threshold and per-class IoU / precision /
recall at the best threshold; ``--out`` writes them as JSON.

Degenerate seeds are reported (exit status 0, the scores unchanged) with a
``WARNING:`` line naming the CAM folder: all CAMs zero (no value above the smallest
threshold, so every threshold gives the same mIoU: wrong checkpoint, untrained model
or wrong CAM folder), or images whose GT classes all have all-zero CAMs (up to
``--max-listed`` ids).
"""
import argparse
import json
import os.path as osp

import mmwsss  # noqa: F401  (compat shims before mmseg / mmengine)
from mmwsss.evaluation.functional import format_percent
from mmwsss.evaluation.seed_eval import (UNDEFINED, evaluate_cam_dir,
                                         format_seed_table, scores_to_json)
from mmwsss.utils.cli import run_tool
from mmwsss.utils.io import atomic_write
from mmwsss.utils.launch import build_split_dataset, key_value_action


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('cam_dir', help='folder of <img_id>.npz CAM files')
    p.add_argument('config', help='config whose <split>_dataloader.dataset is '
                   'evaluated')
    p.add_argument('--split', default='train', choices=['train', 'val', 'test'],
                   help='which dataloader of the config (default: train)')
    p.add_argument('--thresholds', type=float, nargs='+', default=None,
                   help='background thresholds (default 0.05 0.10 ... 0.95)')
    p.add_argument('--out', help='write the results to this JSON file')
    p.add_argument('--max-listed', type=int, default=10,
                   help='ids listed by the warning about images without seeds '
                   '(default 10)')
    p.add_argument('--no-progress', action='store_true',
                   help='do not show a progress bar')
    p.add_argument('--cfg-options', nargs='+', action=key_value_action(),
                   help='override settings of the config, key=value pairs')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dataset = build_split_dataset(args.config, args.split, args.cfg_options)
    scores = evaluate_cam_dir(
        args.cam_dir,
        dataset,
        thresholds=args.thresholds,
        progress=not args.no_progress,
        max_listed=args.max_listed)
    print(format_seed_table(scores))
    miou = format_percent(scores['best_miou'], UNDEFINED)
    print(f"seed mIoU {miou} at background threshold "
          f"{scores['best_threshold']:g} ({scores['num_images']} images, "
          f'split {args.split})')
    q = scores.get('attention_quality')
    if q:
        recall = format_percent(q['recall'], UNDEFINED)
        noise = format_percent(q['noise'], UNDEFINED)
        print(f'attention maps at 50% of their max: recall {recall}, '
              f'noise (1 - precision) {noise} (pooled)')
    for msg in scores.get('warnings', []):
        print(f'WARNING: {msg}')
    if args.out:
        result = scores_to_json(scores)
        result.update(
            cam_dir=osp.abspath(args.cam_dir),
            config=args.config,
            split=args.split,
            num_images=scores['num_images'])
        with atomic_write(args.out, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'results written to {args.out}')


if __name__ == '__main__':
    # a readable one-line error; the messages name the file / id and the fix
    run_tool(main)
