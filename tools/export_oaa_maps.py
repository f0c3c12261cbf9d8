"""Export the OAA cumulative attention maps saved in a checkpoint to CAM files.

    python tools/export_oaa_maps.py CHECKPOINT --out DIR
        [--interpolation bicubic|bilinear] [--normalize minmax|max|none]
        [--ids-file SPLIT.txt] [--overwrite]

Every checkpoint written while ``OAAHook`` was active holds the maps of all images
(``checkpoint['oaa_state']``); the hook also exports them at the end of training
(``OAAHook.export_dir``). Each map is resized to the original image size (bicubic)
and min-max normalised, as the official OAA ``res.py``; one ``<img_id>.npz`` per image
(docs/cam_format.md). Existing files are kept unless ``--overwrite``.
"""
import argparse
import os.path as osp

import mmwsss  # noqa: F401  (compat shims, checkpoint allow-list)
from mmwsss.utils.cli import ToolError, load_checkpoint_file, run_tool


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoint', help='a checkpoint saved with OAAHook')
    p.add_argument('--out', required=True, help='output folder of CAM files')
    p.add_argument('--interpolation', default='bicubic',
                   choices=['bicubic', 'bilinear'])
    p.add_argument('--normalize', default='minmax',
                   choices=['minmax', 'max', 'none'])
    p.add_argument('--ids-file', help='only export the ids listed in this file '
                   '(one per line, e.g. a split file)')
    p.add_argument('--overwrite', action='store_true',
                   help='rewrite CAM files that already exist')
    p.add_argument('--no-progress', action='store_true')
    return p.parse_args(argv)


def load_oaa_state(path: str) -> dict:
    import torch

    from mmwsss.engine.hooks.oaa_hook import STATE_KEY
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    ckpt = load_checkpoint_file(
        path, lambda p: torch.load(p, map_location='cpu', weights_only=True))
    if not isinstance(ckpt, dict) or STATE_KEY not in ckpt:
        raise KeyError(
            f'checkpoint {path!r} has no {STATE_KEY!r}: it was not trained with '
            "OAAHook (custom_hooks=[dict(type='OAAHook'), ...])")
    return ckpt[STATE_KEY]


def main(argv=None):
    args = parse_args(argv)
    from mmwsss.engine.hooks.attention_store import AttentionStore
    from mmwsss.evaluation.attention_export import export_attention_maps
    from mmwsss.utils.io import read_split_ids
    state = load_oaa_state(args.checkpoint)
    store = AttentionStore(state['cumulative'].get('fusion', 'max'))
    store.load_state_dict(state['cumulative'])
    ori_shapes = {
        str(i): (int(s[0]), int(s[1]))
        for i, s in zip(state['image_ids'], state['ori_shapes'])
    }
    ids = sorted(ori_shapes)
    if args.ids_file:
        wanted = read_split_ids(args.ids_file)
        missing = [i for i in wanted if i not in ori_shapes]
        if missing:
            shown = ', '.join(missing[:5]) + (' ...' if len(missing) > 5 else '')
            raise ToolError(
                f'{len(missing)} id(s) of {args.ids_file} were never visited by '
                f'OAA training in {args.checkpoint}: {shown}. Give the split '
                'file of the images this model was trained on (--ids-file), or '
                'drop --ids-file to export every visited image')
        ids = list(wanted)
    n = export_attention_maps(
        store.by_image(), ori_shapes, int(state['num_classes']), args.out,
        ids=ids, interpolation=args.interpolation, normalize=args.normalize,
        overwrite=args.overwrite, progress=not args.no_progress)
    print(f'\nwrote {n} CAM files to {args.out} ({len(ids) - n} kept)')


if __name__ == '__main__':
    run_tool(main)
