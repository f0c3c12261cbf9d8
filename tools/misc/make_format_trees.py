"""Write small VOC 2012 + SBD (and COCO 2014) trees in the official on-disk formats.

    python tools/misc/make_format_trees.py --out data/formats [--seed 0] [--coco]
        [--weights data/formats/pretrained] [--convert] [--nproc 1]

Writes under --out what a user has after extracting the official archives:
``VOCdevkit/VOC2012`` (JPEGImages, Annotations, SegmentationClass, SaliencyDSS,
ImageSets/Segmentation), ``benchmark_RELEASE/dataset`` (SBD cls/, inst/, img/,
train.txt, val.txt) and, with --coco, ``coco2014`` (train2014/, val2014/,
annotations/instances_*.json). With --weights DIR: stand-in ImageNet weight files
(random, seeded models; the file names of docs/getting_started.md; existing files are
kept). With --convert: runs the real converters on the trees, as a user would:

    python tools/dataset_converters/voc_aug.py --voc-root OUT/VOCdevkit/VOC2012 \
        --sbd-root OUT/benchmark_RELEASE/dataset
    python tools/dataset_converters/coco_wsss.py --coco-root OUT/coco2014

The data are coloured shapes and the weights random: they exercise formats, converters
and configs, not accuracy. See mmwsss/datasets/format_trees.py and docs/datasets.md.
"""
import argparse
import os.path as osp
import subprocess
import sys
import time

from mmwsss.datasets.format_trees import (make_coco_format_tree,
                                          make_standin_weights,
                                          make_voc_format_tree)
from mmwsss.utils.cli import ToolError, run_tool

REPO = osp.abspath(osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))


def run_converter(args):
    cmd = [sys.executable] + args
    print('$ ' + ' '.join(args), flush=True)
    p = subprocess.run(cmd, cwd=REPO)
    if p.returncode != 0:
        raise ToolError(f'converter failed (exit status {p.returncode}): '
                        f"{' '.join(args)}; its error is printed above")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='data/formats', help='output folder')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-voc-train', type=int, default=4)
    p.add_argument('--num-voc-val', type=int, default=3)
    p.add_argument('--num-sbd-only', type=int, default=4)
    p.add_argument('--no-saliency', action='store_true',
                   help='do not write VOC2012/SaliencyDSS')
    p.add_argument('--coco', action='store_true',
                   help='also write the COCO 2014 tree under OUT/coco2014')
    p.add_argument('--num-coco-train', type=int, default=4)
    p.add_argument('--num-coco-val', type=int, default=3)
    p.add_argument('--weights', default=None, metavar='DIR',
                   help='also write stand-in (random) ImageNet weights into DIR')
    p.add_argument('--convert', action='store_true',
                   help='run the dataset converters on the trees')
    p.add_argument('--nproc', type=int, default=1,
                   help='--nproc of the converters')
    a = p.parse_args()

    t0 = time.time()
    voc = make_voc_format_tree(
        a.out,
        seed=a.seed,
        num_voc_train=a.num_voc_train,
        num_voc_val=a.num_voc_val,
        num_sbd_only=a.num_sbd_only,
        saliency=not a.no_saliency)
    print(f"VOC 2012: {voc['voc_root']}: {len(voc['all_ids'])} images "
          f"(seg train {len(voc['voc_train'])}, val {len(voc['voc_val'])}, "
          f"SBD-only {len(voc['sbd_only'])})"
          + (', SaliencyDSS/' if voc['saliency_dir'] else ''))
    print(f"SBD: {voc['sbd_root']}: train.txt {len(voc['sbd_train'])} ids, "
          f"val.txt {len(voc['sbd_val'])} ids (one VOC val id in train.txt)")
    coco = None
    if a.coco:
        coco = make_coco_format_tree(
            osp.join(a.out, 'coco2014'),
            seed=a.seed,
            num_train=a.num_coco_train,
            num_val=a.num_coco_val)
        print(f"COCO 2014: {coco['root']}: "
              f"{len(coco['images']['train2014'])} train / "
              f"{len(coco['images']['val2014'])} val images "
              f"({len(coco['empty_ids'])} without annotations), "
              'annotations/instances_{train,val}2014.json')
    if a.weights:
        paths = make_standin_weights(a.weights, seed=a.seed)
        for path in paths.values():
            print(f'stand-in weights (random, not ImageNet): {path}')
    if a.convert:
        run_converter([
            'tools/dataset_converters/voc_aug.py', '--voc-root',
            voc['voc_root'], '--sbd-root', voc['sbd_root'], '--nproc',
            str(a.nproc)
        ])
        if coco:
            run_converter([
                'tools/dataset_converters/coco_wsss.py', '--coco-root',
                coco['root'], '--nproc',
                str(a.nproc)
            ])
        print(f"data_root for the VOC configs: {voc['voc_root']}"
              + (f"; for coco14.py: {coco['root']}" if coco else ''))
    print(f'done in {time.time() - t0:.1f} s')


if __name__ == '__main__':
    run_tool(main)
