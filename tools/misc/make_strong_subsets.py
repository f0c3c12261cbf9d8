"""Write the id lists of the GAIN_ext strong subsets (pixel masks, boxes).

    python tools/misc/make_strong_subsets.py --data-root data/VOCdevkit/VOC2012 \\
        [--pool ImageSets/Segmentation/train.txt] [--num 200 400 900 1464] \\
        [--kind pixel box b+p] [--seed 0] [--out-dir ImageSets/GAIN]

For every number N and kind it writes, under ``--out-dir`` (relative to
``--data-root``), ``pixel_N.txt``, ``box_N.txt`` or, for b+p (half and half),
``bp_N_pixel.txt`` + ``bp_N_box.txt``: N ids chosen at random (seeded) from the
``--pool`` split (VOC 2012 train, the 1,464 pixel-labelled images, as in Li et al.,
CVPR 2018, Tables 1-4). Subsets of one seed are nested (the 200 ids are among the
400). A dataset reads them with ``strong_subsets=dict(pixel='ImageSets/GAIN/
pixel_200.txt')`` (docs/datasets.md, section 'Strong subsets').
"""
import argparse
import os.path as osp

from mmwsss.datasets.strong_subsets import SUBSET_KINDS, write_strong_subsets
from mmwsss.utils.cli import ToolError, run_tool
from mmwsss.utils.io import read_split_ids


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data-root', required=True,
                   help='the dataset root (data_root of the configs)')
    p.add_argument('--pool', default='ImageSets/Segmentation/train.txt',
                   help='split list to choose from, relative to --data-root '
                   '(default: VOC 2012 train)')
    p.add_argument('--num', type=int, nargs='+', default=[200, 400, 900, 1464],
                   help='subset sizes (default: 200 400 900 1464)')
    p.add_argument('--kind', nargs='+', choices=SUBSET_KINDS,
                   default=list(SUBSET_KINDS),
                   help='pixel, box and/or b+p (default: all three)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out-dir', default='ImageSets/GAIN',
                   help='output folder, relative to --data-root')
    a = p.parse_args()
    if not osp.isdir(a.data_root):
        raise ToolError(f'--data-root {a.data_root!r} does not exist')
    pool = read_split_ids(osp.join(a.data_root, a.pool))
    n_pool = len(set(pool))
    too_many = [n for n in a.num if not 1 <= n <= n_pool]
    if too_many:
        raise ToolError(f'--num {too_many}: the pool {a.pool!r} has {n_pool} ids; '
                        f'each number must be in 1..{n_pool}')
    out_dir = osp.join(a.data_root, a.out_dir)
    for num in a.num:
        for kind in a.kind:
            files = write_strong_subsets(out_dir, pool, num, kind, seed=a.seed,
                                         pool_name=a.pool)
            rel = ', '.join(f"{k}='{osp.relpath(v, a.data_root)}'"
                            for k, v in files.items())
            print(f'{kind} {num}: strong_subsets=dict({rel})')


if __name__ == '__main__':
    run_tool(main)
