"""Write the *trivial* seeds of a split as CAM files: every pixel of an image gets the
value 1 for each of its image-level classes (the union of its labels). The reference
any CAM method must beat (eval with tools/eval_seeds.py).

    python tools/misc/make_trivial_cams.py CONFIG --out DIR [--split train] [--data-root D]
        [--cfg-options k=v ...]
"""
import argparse

import mmwsss  # noqa: F401  (compat shims first)
import numpy as np
from PIL import Image

from mmwsss.utils.cam_io import cam_path, save_cam
from mmwsss.utils.cli import run_tool
from mmwsss.utils.io import decoding
from mmwsss.utils.launch import build_split_dataset, key_value_action


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--out', required=True)
    p.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument('--cfg-options', nargs='+', action=key_value_action(),
                   help='override settings of the config, key=value pairs')
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    options = dict(a.cfg_options or {})
    if a.data_root:
        options[f'{a.split}_dataloader.dataset.data_root'] = a.data_root
    dataset = build_split_dataset(a.config, a.split, options)
    k = len(dataset.metainfo['classes']) - 1
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        with decoding(info['img_path'], 'image'), Image.open(
                info['img_path']) as img:
            w, h = img.size
        labels = np.nonzero(info['gt_label'])[0]
        save_cam(
            cam_path(a.out, info['img_id']),
            np.ones((len(labels), h, w), np.float32), labels, num_classes=k)
    print(f'{len(dataset)} trivial CAM files written to {a.out}')


if __name__ == '__main__':
    run_tool(main)
