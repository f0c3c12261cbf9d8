"""Generate the embedded toy WSSS dataset (VOC layout), deterministically.

    python tools/misc/make_toy_dataset.py --out data/toy [--seed 0]
        [--num-train 400] [--num-val 100] [--image-size 128] [--overwrite]

Re-running with the same parameters is a no-op. See mmwsss/datasets/toy_generator.py
and docs/datasets.md for what the data looks like and why.
"""
import argparse

from mmwsss.datasets.toy_generator import make_toy_dataset
from mmwsss.utils.cli import run_tool


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='data/toy', help='output folder')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-train', type=int, default=400)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--image-size', type=int, default=128)
    p.add_argument('--max-objects', type=int, default=3)
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
        overwrite=a.overwrite)
    print(f"toy dataset at {a.out}: {meta['num_train']} train / "
          f"{meta['num_val']} val images, {len(meta['classes']) - 1} classes, "
          f"seed {meta['seed']}")


if __name__ == '__main__':
    run_tool(main)
