"""Turn seeds (a folder of CAM files) into VOC-format pseudo labels.

    python tools/make_pseudo_labels.py CONFIG CAM_DIR --out OUT_DIR
        [--rule NAME] [--rule-options k=v ...] [--saliency-dir DIR]
        [--split train] [--workers N] [--overwrite] [--eval] [--json F]
        [--allow-all-ignored] [--cfg-options k=v ...]

The images are those of ``cfg[f'{split}_dataloader'].dataset`` (default split: train;
VOC12-aug configs use train_aug). The rule is ``cfg.pseudo_label_rule`` unless
``--rule`` names one (``ThresholdBackground``, ``SaliencyBackground``,
``EDAMSaliency``, ``ConfidentRegions``; ``docs/pseudo_labels.md``); ``--rule-options``
overrides its arguments, e.g. ``--rule-options threshold=0.25 crf=psa`` (dotted keys
reach nested ones: ``crf.preset=vwl crf.bilateral.sxy=16``). Saliency maps
come from ``--saliency-dir`` or the dataset's ``data_prefix.saliency_path``.

Writes ``OUT_DIR/<img_id>.png`` (palette PNG: 0 background, 1..K classes, 255 ignore),
each atomically; ids whose PNG exists are skipped unless ``--overwrite`` (re-run an
interrupted job to finish it). The result does not depend on ``--workers``. With
``--eval`` the pseudo labels are compared with the GT masks: mIoU / precision / recall
over the pixels they label, and the share of GT pixels they ignore (``n/a`` where a
score is undefined, e.g. no labelled pixel).

Labels that cannot be right stop the tool with a non-zero exit and a message naming
the output folder, the rule and the likely causes: every pixel of every label is
ignore (255), no pixel of any label is a foreground class, or (``--eval``) no pixel
that has a GT label is labelled. The labels already written stay (complete files);
``--allow-all-ignored`` accepts such labels (a warning, exit 0).
"""
import argparse
import json

import mmwsss  # noqa: F401  (compat shims before mmseg / mmengine)
from mmengine.config import Config

from mmwsss.evaluation.functional import (format_class_table, format_percent,
                                          percent_or_none)
from mmwsss.utils.cli import run_tool
from mmwsss.utils.launch import key_value_action


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config with <split>_dataloader.dataset and '
                   'optionally pseudo_label_rule')
    p.add_argument('cam_dir', help='folder of <img_id>.npz CAM files')
    p.add_argument('--out', required=True, help='output folder of PNG labels')
    p.add_argument('--rule', help='rule type (overrides cfg.pseudo_label_rule)')
    p.add_argument('--rule-options', nargs='+', action=key_value_action(),
                   help='override arguments of the rule, key=value pairs')
    p.add_argument('--saliency-dir', help='folder of <img_id>.png saliency maps '
                   '(default: the dataset\'s data_prefix.saliency_path)')
    p.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    p.add_argument('--workers', type=int, default=1,
                   help='worker processes (default 1)')
    p.add_argument('--overwrite', action='store_true',
                   help='rewrite labels that already exist')
    p.add_argument('--eval', action='store_true',
                   help='score the pseudo labels against the GT masks')
    p.add_argument('--json', help='write the summary (and scores) to this file '
                   '(not written when the labels are degenerate, see '
                   '--allow-all-ignored)')
    p.add_argument('--allow-all-ignored', action='store_true',
                   help='accept labels that are all ignore (255), have no '
                   'foreground pixel, or (--eval) label no GT pixel; without '
                   'it such labels stop the tool with a non-zero exit (the '
                   'labels written stay)')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--cfg-options', nargs='+', action=key_value_action(),
                   help='override settings of the config, key=value pairs')
    return p.parse_args(argv)


def rule_config(args) -> dict:
    from mmwsss.utils.config_scope import resolve_config
    from mmwsss.utils.launch import merge_cfg_options
    cfg = merge_cfg_options(Config.fromfile(resolve_config(args.config)),
                            args.cfg_options)
    rule = dict(cfg.get('pseudo_label_rule') or {})
    if args.rule:
        if rule.get('type') != args.rule:
            rule = {}
        rule['type'] = args.rule
    if not rule.get('type'):
        raise KeyError(
            f'config {args.config!r} has no `pseudo_label_rule`: add e.g. '
            "pseudo_label_rule = dict(type='ThresholdBackground', threshold=0.15)"
            ' or pass --rule NAME')
    if args.rule_options:
        # dotted keys reach into nested arguments: crf.preset=vwl crf.iterations=5
        merged = Config(dict(rule=rule))
        merged.merge_from_dict(
            {f'rule.{k}': v for k, v in args.rule_options.items()})
        rule = merged.to_dict()['rule']
    return rule


class DegenerateLabelsError(ValueError):
    """The pseudo labels cannot be right (see ``degenerate_labels_message``)."""


def format_scores(scores: dict) -> str:
    """Per-class table and summary line; undefined scores read ``n/a``, never
    ``nan``."""
    none = scores.get('labelled_gt_pixels', 1) == 0
    miou = format_percent(scores['mIoU'],
                          'n/a (no labelled pixel)' if none else 'n/a')
    acc = format_percent(scores['accuracy'], 'n/a')
    ign = format_percent(scores['ignored_ratio'], 'n/a (no GT pixel)')
    ign = ign + ' %' if not ign.startswith('n/a') else ign
    return (format_class_table(scores, 'n/a') + f'\npseudo-label mIoU {miou}, '
            f'pixel accuracy {acc} (labelled pixels), '
            f'ignored {ign} of the GT pixels')


def main(argv=None):
    args = parse_args(argv)
    from mmwsss.pseudo import build_pseudo_label_rule
    from mmwsss.pseudo.job import (collect_tasks, degenerate_labels_message,
                                   run_pseudo_label_job)
    from mmwsss.utils.io import atomic_write
    from mmwsss.utils.launch import build_split_dataset
    rule_cfg = rule_config(args)
    rule = build_pseudo_label_rule(rule_cfg)  # fail early on bad arguments
    dataset = build_split_dataset(args.config, args.split, args.cfg_options)
    classes = list(dataset.metainfo['classes'])
    tasks = collect_tasks(
        dataset, args.cam_dir, args.out, saliency_dir=args.saliency_dir,
        need_image=rule.requires_image, need_saliency=rule.requires_saliency,
        need_gt=args.eval)
    print(f'{len(tasks)} images, rule {rule_cfg}, {args.workers} worker(s) '
          f'-> {args.out}')
    summary = run_pseudo_label_job(
        tasks, rule_cfg, num_classes=len(classes) - 1, class_names=classes,
        workers=args.workers, overwrite=args.overwrite, evaluate=args.eval,
        progress=not args.no_progress)
    print(f"wrote {summary['written']} pseudo labels, kept {summary['skipped']} "
          'existing ones')
    out = dict(num_images=summary['num_images'], written=summary['written'],
               skipped=summary['skipped'], rule=rule_cfg, cam_dir=args.cam_dir,
               out=args.out, split=args.split)
    if 'scores' in summary:
        s = summary['scores']
        print(format_scores(s))
        out.update(
            mIoU=percent_or_none(s['mIoU']),
            accuracy=percent_or_none(s['accuracy']),
            ignored_ratio=percent_or_none(s['ignored_ratio']),
            per_class={
                k: dict(zip(s['class_names'],
                            [percent_or_none(v) for v in s[k]]))
                for k in ('iou', 'precision', 'recall')
            })
    problem = degenerate_labels_message(summary, args.out, rule_cfg,
                                        args.cam_dir)
    if problem is not None:
        if not args.allow_all_ignored:
            raise DegenerateLabelsError(problem)
        print(f'WARNING: {problem} (accepted: --allow-all-ignored)')
        out['warning'] = problem
    if args.json:
        with atomic_write(args.json, 'w') as f:
            json.dump(out, f, indent=2)
        print(f'summary written to {args.json}')


if __name__ == '__main__':
    run_tool(main, interrupted='interrupted; the labels written so far are '
             'complete, re-run the same command to finish')
