"""Compare WSSS seed methods on the toy dataset (a leaderboard and a picture grid).

Each method config is trained with several seeds; its seeds (CAMs) and pseudo labels
are evaluated with the standard tools.

    python tools/analysis/compare_methods.py [--configs CFG ...] [--seeds 0 1 2 |
        --num-seeds N] [--work-dir work_dirs/compare] [--data-root data/toy]
        [--workers N] [--cfg-options k=v ...] [--baseline CAM] [--grid-rows 6]
        [--fast] [--fresh]

The methods are the configs with a top-level ``method`` dict (default: every such
config under configs/toy/; docs/extending.md, section '7. A leaderboard row'). Each
(config, seed) run, in WORK/runs/<config stem>/seed<s>, uses the standard tools:
tools/train.py (``--resume``, ``randomness.seed=<s>``), the seeds (tools/export_cams.py,
or the folder the training wrote, e.g. OAA's oaa_maps), tools/eval_seeds.py and
tools/make_pseudo_labels.py with the config's ``pseudo_label_rule`` (a config without
one: ThresholdBackground at the run's best seed threshold). A run that needs another
config's output (OAA+ trains on the OAA maps of the same seed) runs after it; a
required config that is not listed is added. Each run's output goes to its log.txt.

Re-running the same command skips finished runs (result.json) and finished steps, and
resumes an interrupted training. The runs are tied to the toy data they were made on
(WORK/toy_meta.json): other data stops the tool (``--fresh`` deletes WORK/runs).

Writes WORK/leaderboard.{json,md} (mean ± std over the seeds of the seed mIoU,
attention recall / noise, pseudo-label mIoU, the training step time relative to the
baseline, the wall time of a run) and WORK/grid.png (the first train images: image,
GT, each method's seed labels for the first seed). Step times of runs made with
--workers > 1 share the CPUs: compare step times of --workers 1 runs on an idle
machine.

``--fast`` (CI): tiny generated data under WORK/data (unless --data-root), 1 seed
(unless given) and a 2-epoch schedule. ``--cfg-options`` go to the training only,
after the ``--fast`` schedule (e.g. ``train_cfg.max_epochs=10
param_scheduler.0.end=10``).
"""
import argparse
import os.path as osp
import shlex
import sys
import time

import mmwsss  # noqa: F401  (compat shims and the mmwsss:: config scope first)
from mmwsss.evaluation import compare
from mmwsss.utils.cli import ToolError, run_tool

REPO = osp.abspath(osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
TOOLS_DIR = osp.join(REPO, 'tools')
CONFIG_DIR = osp.join(REPO, 'configs', 'toy')
#: the tiny data of --fast
FAST_DATA = dict(num_train=24, num_val=8)


def key_value(item: str) -> str:
    if '=' not in item or not item.partition('=')[0].strip():
        raise argparse.ArgumentTypeError(
            f'{item!r} is not key=value (e.g. train_cfg.max_epochs=2)')
    return item


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--configs', nargs='+', metavar='CFG',
                   help='method configs (files, or names under configs/toy/); '
                   'default: every config under configs/toy/ with a `method`')
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument('--seeds', nargs='+', type=int, metavar='S',
                       help='training seeds (randomness.seed), e.g. 0 1 2')
    seeds.add_argument('--num-seeds', type=int, metavar='N',
                       help='seeds 0..N-1 (default 3; --fast: 1)')
    p.add_argument('--work-dir', default='work_dirs/compare',
                   help='where the runs and the results go (default '
                   'work_dirs/compare)')
    p.add_argument('--data-root', help='the toy data (default data/toy; --fast: '
                   'WORK/data/toy); generated if it has no toy_meta.json')
    p.add_argument('--workers', type=int, default=1,
                   help='runs at a time (default 1); each tool then gets '
                   'cpu_count // N threads unless OMP_NUM_THREADS is set')
    p.add_argument('--cfg-options', nargs='+', type=key_value, default=[],
                   metavar='K=V', help='override settings of the training config '
                   '(key=value pairs, passed to tools/train.py)')
    p.add_argument('--baseline', default='CAM',
                   help='the method (name or config) the step time is relative to '
                   '(default CAM: configs/toy/cam_r18_toy.py); added if not listed')
    p.add_argument('--grid-rows', type=int, default=6,
                   help='train images in grid.png (default 6)')
    p.add_argument('--fast', action='store_true',
                   help='CI mode: tiny data, 1 seed, 2 epochs')
    p.add_argument('--fresh', action='store_true',
                   help='delete WORK/runs first (all runs start over)')
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f'--workers {args.workers}: must be >= 1')
    if args.grid_rows < 0:
        p.error(f'--grid-rows {args.grid_rows}: must be >= 0')
    if args.num_seeds is not None and args.num_seeds < 1:
        p.error(f'--num-seeds {args.num_seeds}: must be >= 1')
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        p.error(f'--seeds {args.seeds}: a seed is listed twice')
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    command = shlex.join(['python', osp.relpath(osp.abspath(__file__))] +
                         (sys.argv[1:] if argv is None else list(argv)))
    work = osp.abspath(args.work_dir)
    seeds = args.seeds or list(range(args.num_seeds or (1 if args.fast else 3)))

    # the methods, in run order
    cache = {}
    if args.configs:
        selected = []
        for item in args.configs:
            path = compare.resolve_config_arg(item, CONFIG_DIR)
            spec = compare.load_method(path)
            if spec is None:
                raise ToolError(
                    f'--configs {item}: {path} declares no method (no `method` '
                    "dict, or method = None); add e.g. method = dict(name='CAM', "
                    "seeds='cams') (docs/extending.md) or leave it out")
            if spec.config not in {s.config for s in selected}:
                selected.append(spec)
    else:
        selected = compare.discover_methods(CONFIG_DIR)
        if not selected:
            raise ToolError(f'no config under {CONFIG_DIR} declares a `method`: '
                            'pass --configs')
    for spec in selected:
        cache[spec.config] = spec
    baseline = compare.resolve_baseline(args.baseline, selected, CONFIG_DIR, cache)
    methods, added = compare.plan_methods(selected, baseline, cache)
    for spec, why in added:
        print(f'added {osp.relpath(spec.config)} ({spec.name}): {why}')
    names = ', '.join(f'{m.name} ({osp.basename(m.config)})' for m in methods)
    print(f"methods: {names}; seeds {' '.join(map(str, seeds))}; baseline "
          f'{baseline.name}')

    # the data
    data_root = args.data_root or (osp.join(work, 'data', 'toy') if args.fast
                                   else 'data/toy')
    data_root, toy_meta = compare.prepare_data(
        data_root, work, fresh=args.fresh,
        generate=FAST_DATA if args.fast else None)
    print(f'toy data {data_root}: {toy_meta}')

    # the runs
    ctx = compare.RunContext(
        work_dir=work, data_root=data_root, tools_dir=TOOLS_DIR,
        train_options=(list(compare.FAST_SCHEDULE) if args.fast else []) +
        list(args.cfg_options),
        workers=args.workers, env=compare.child_env(args.workers))
    jobs = compare.make_jobs(methods, seeds, work)
    print(f'{len(jobs)} run(s) in {osp.join(work, "runs")}, {args.workers} at a time')
    results = compare.execute_jobs(jobs, ctx, args.workers)

    # the results
    board = compare.write_results(work, methods, seeds, results, baseline,
                                  toy_meta, command, data_root, args.grid_rows)
    print('\n' + '\n'.join(compare.leaderboard_table(board)))
    print(f'\nwrote {osp.join(work, compare.LEADERBOARD_MD)}, '
          f'{compare.LEADERBOARD_JSON} and {compare.GRID_PNG} '
          f'({time.time() - started:.0f} s)')


if __name__ == '__main__':
    run_tool(main, interrupted='interrupted; finished runs and steps are kept: run '
             'the same command again to continue')
