"""Collect the figures of a `make demo` run into summary.json, print them as a table
and draw overview.png (image, GT, CAM, the method's seed map, pseudo label,
prediction).

    python tools/misc/demo_summary.py WORK_DIR [--data-root data/toy] [--num-images 4]
        [--method oaa] [--method-name OAA] [--seeds-dir DIR] [--pseudo-dir DIR]

WORK_DIR is the demo's work dir (tools/demo.sh): seeds_cam.json (the CAMs of the
trained classifier), seeds_method.json (the method's seed maps when they are not those
CAMs, e.g. OAA's cumulative maps), pseudo_labels.json,
seg_{pseudo,gt}_metrics_{single,tta}.json, the CAM folder and the segmentation
checkpoints. ``--seeds-dir`` is the method's seed folder (default WORK_DIR/cams),
``--pseudo-dir`` the pseudo labels (default DATA_ROOT/PseudoLabels/demo_METHOD).
"""
import argparse
import json
import os.path as osp

import mmwsss  # noqa: F401  (compat shims first)
import numpy as np

from mmwsss.evaluation.functional import format_percent
from mmwsss.utils.cli import run_tool
from mmwsss.utils.io import atomic_write

REPO = osp.abspath(osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))


def _load(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path!r} is missing: run the demo stage that writes it '
            '(bash tools/demo.sh resumes where it stopped)')
    with open(path) as f:
        return json.load(f)


def collect(work: str, method: str = 'oaa', method_name: str = 'OAA') -> dict:
    """The demo's figures. ``seed_miou`` has the key ``cam`` (the CAMs of the trained
    classifier) and ``method`` (the method's seed maps); a method whose seeds are
    those CAMs (e.g. ``cam``, ``iam``) has only its own key."""
    seg = {}
    for v in ('pseudo', 'gt'):
        for mode in ('single', 'tta'):
            m = _load(osp.join(work, f'seg_{v}_metrics_{mode}.json'))
            seg[(v, mode)] = float(m['mIoU'])
    pl = _load(osp.join(work, 'pseudo_labels.json'))
    cam = _load(osp.join(work, 'seeds_cam.json'))['mIoU']
    method_json = osp.join(work, 'seeds_method.json')
    seeds = {method: cam}
    if osp.isfile(method_json):
        seeds = {'cam': cam, method: _load(method_json)['mIoU']}
    return {
        'method': method,
        'method_name': method_name,
        'seed_miou': seeds,
        'pseudo_label_miou': pl['mIoU'],
        'pseudo_label_ignored_ratio': pl['ignored_ratio'],
        # single-scale test
        'seg_miou': {
            'pseudo': seg[('pseudo', 'single')],
            'gt': seg[('gt', 'single')]
        },
        # tools/test.py --tta: multi-scale + flip, then one dense CRF
        'seg_miou_tta_crf': {
            'pseudo': seg[('pseudo', 'tta')],
            'gt': seg[('gt', 'tta')]
        },
    }


def table(s: dict) -> str:
    method, name = s['method'], s['method_name']
    rows = []
    if 'cam' in s['seed_miou'] and method != 'cam':
        rows.append((f'seeds: CAM of the {name} classifier (train)',
                     s['seed_miou']['cam']))
    rows += [
        (f'seeds: {name} (train)', s['seed_miou'][method]),
        ('pseudo labels (train, labelled pixels)', s['pseudo_label_miou']),
        ('LargeFOV on pseudo labels (val)', s['seg_miou']['pseudo']),
        ('  + multi-scale, flip, CRF', s['seg_miou_tta_crf']['pseudo']),
        ('LargeFOV on GT, upper bound (val)', s['seg_miou']['gt']),
        ('  + multi-scale, flip, CRF', s['seg_miou_tta_crf']['gt']),
    ]
    w = max(len(r[0]) for r in rows)
    lines = [f"{'stage'.ljust(w)}  mIoU (%)", '-' * (w + 10)]
    lines += [
        f'{name.ljust(w)}  ' + format_percent(value, fraction=False).rjust(8)
        for name, value in rows
    ]
    return '\n'.join(lines)


def overview(work: str, data_root: str, out: str, num: int, seeds_dir: str,
             pseudo_dir: str, method_name: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmseg.apis import inference_model, init_model

    from mmwsss.utils.cam_io import cam_path, load_cam
    from mmwsss.utils.io import read_label_png, read_split_ids, voc_palette
    from mmwsss.pseudo.job import read_rgb
    ids = read_split_ids(
        osp.join(data_root, 'ImageSets', 'Segmentation', 'train.txt'))[:num]
    palette = voc_palette()
    ckpt = open(osp.join(work, 'seg_pseudo', 'last_checkpoint')).read().strip()
    cfg = osp.join(REPO, 'configs', 'toy', 'largefov_r18_toy_pseudo.py')
    model = init_model(cfg, ckpt, device='cpu')
    same = osp.realpath(seeds_dir) == osp.realpath(osp.join(work, 'cams'))
    cols = ['image', 'GT', 'CAM'] + ([] if same else [f'{method_name} map']) + [
        'pseudo label', 'prediction']
    fig, axes = plt.subplots(len(ids), len(cols),
                             figsize=(2.2 * len(cols), 2.2 * len(ids)))
    axes = np.atleast_2d(axes)
    for r, img_id in enumerate(ids):
        img_path = osp.join(data_root, 'JPEGImages', img_id + '.jpg')
        img = read_rgb(img_path)
        gt = read_label_png(
            osp.join(data_root, 'SegmentationClass', img_id + '.png'))
        cam = load_cam(cam_path(osp.join(work, 'cams'), img_id)).dense().max(0)
        maps = [] if same else [
            load_cam(cam_path(seeds_dir, img_id)).dense().max(0)]
        pseudo = read_label_png(osp.join(pseudo_dir, img_id + '.png'))
        pred = inference_model(model, img_path).pred_sem_seg.data[0].numpy()
        panels = [img, palette[gt], cam] + maps + [
            palette[pseudo], palette[pred.astype(np.uint8)]]
        for c, (ax, p) in enumerate(zip(axes[r], panels)):
            ax.imshow(p, cmap='jet' if p.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=9)
    fig.tight_layout()
    with atomic_write(out) as f:
        fig.savefig(f, format='png', dpi=80)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dir')
    p.add_argument('--data-root', default='data/toy')
    p.add_argument('--num-images', type=int, default=4)
    p.add_argument('--method', default='oaa',
                   help='the METHOD of the demo (summary key)')
    p.add_argument('--method-name', default='OAA', help='its display name')
    p.add_argument('--seeds-dir', help='the method\'s seed maps (default '
                   'WORK_DIR/cams)')
    p.add_argument('--pseudo-dir', help='the pseudo labels (default '
                   'DATA_ROOT/PseudoLabels/demo_METHOD)')
    args = p.parse_args(argv)
    seeds_dir = args.seeds_dir or osp.join(args.work_dir, 'cams')
    pseudo_dir = args.pseudo_dir or osp.join(args.data_root, 'PseudoLabels',
                                             f'demo_{args.method}')
    summary = collect(args.work_dir, args.method, args.method_name)
    with atomic_write(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(table(summary))
    png = osp.join(args.work_dir, 'overview.png')
    overview(args.work_dir, args.data_root, png, args.num_images, seeds_dir,
             pseudo_dir, args.method_name)
    print(f"\nwrote {osp.join(args.work_dir, 'summary.json')} and {png}")


if __name__ == '__main__':
    run_tool(main)
