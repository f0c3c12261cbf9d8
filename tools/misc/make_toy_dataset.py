"""Generate the embedded toy WSSS dataset (VOC layout), deterministically.

    python tools/misc/make_toy_dataset.py --out data/toy [--seed 0]
        [--num-train 400] [--num-val 100] [--image-size 128] [--overwrite]
        [--version {1,2}] [--no-markers]

Every dataset holds GAIN_ext strong subsets of its train split: 10 % of the images
(ImageSets/GAIN/pixel_10pct.txt, box_10pct.txt, bp_10pct_{pixel,box}.txt; a folder
made before they existed gets them added, its images untouched).
Re-running with the same parameters is a no-op. ``--version`` picks the generator
(default 2; 1 is the earlier data, kept for comparisons); ``--no-markers`` writes the
version-2 body-only control set (no discriminative markers, every other pixel the
same). See mmwsss/datasets/toy_generator.py and docs/toy_dataset.md for what the data
looks like and why.
"""
import argparse

from mmwsss.datasets.toy_generator import (GENERATOR_VERSION,
                                           GENERATOR_VERSIONS,
                                           STRONG_SUBSET_DIR, make_toy_dataset)
from mmwsss.utils.cli import run_tool


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='data/toy', help='output folder')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-train', type=int, default=400)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--image-size', type=int, default=128)
    p.add_argument('--max-objects', type=int, default=3)
    p.add_argument('--version', type=int, default=GENERATOR_VERSION,
                   choices=GENERATOR_VERSIONS,
                   help=f'generator version (default {GENERATOR_VERSION})')
    p.add_argument('--no-markers', action='store_true',
                   help='version 2 only: paint no class markers (the body-only '
                   'control set)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace an existing dataset with other parameters at --out')
    a = p.parse_args()
    meta = make_toy_dataset(
        a.out,
        seed=a.seed,
        num_train=a.num_train,
        num_val=a.num_val,
        image_size=a.image_size,
        max_objects=a.max_objects,
        overwrite=a.overwrite,
        version=a.version,
        markers=not a.no_markers)
    print(f"toy dataset at {a.out}: {meta['num_train']} train / "
          f"{meta['num_val']} val images, {len(meta['classes']) - 1} classes, "
          f"seed {meta['seed']}, generator version {meta['generator_version']}"
          + ('' if meta.get('markers', True) else ', no markers')
          + f", GAIN_ext strong subsets of {meta['strong_subsets']['num']} "
          f"train images in {STRONG_SUBSET_DIR}")


if __name__ == '__main__':
    run_tool(main)
