"""Write the *trivial* seeds of a split as CAM files: every pixel of an image gets the
value 1 for each of its image-level classes (the union of its labels). The reference
any CAM method must beat (eval with tools/eval_seeds.py).

    python tools/misc/make_trivial_cams.py CONFIG --out DIR [--split train] [--data-root D]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

import mmwsss  # noqa: E402,F401
import numpy as np  # noqa: E402
from mmengine.config import Config  # noqa: E402
from PIL import Image  # noqa: E402

from mmwsss.registry import DATASETS  # noqa: E402
from mmwsss.utils import register_all_modules  # noqa: E402
from mmwsss.utils.cam_io import cam_path, save_cam  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--out', required=True)
    p.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    p.add_argument('--data-root', help='override the dataset data_root')
    a = p.parse_args()
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(a.config)
    ds_cfg = cfg[f'{a.split}_dataloader'].dataset
    ds_cfg.pipeline = []
    if a.data_root:
        ds_cfg.data_root = a.data_root
    dataset = DATASETS.build(ds_cfg)
    k = len(dataset.metainfo['classes']) - 1
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        with Image.open(info['img_path']) as img:
            w, h = img.size
        labels = np.nonzero(info['gt_label'])[0]
        save_cam(
            cam_path(a.out, info['img_id']),
            np.ones((len(labels), h, w), np.float32), labels, num_classes=k)
    print(f'{len(dataset)} trivial CAM files written to {a.out}')


if __name__ == '__main__':
    main()
