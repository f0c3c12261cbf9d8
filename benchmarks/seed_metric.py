"""Benchmark: one-pass threshold sweep vs one seed per threshold (seed evaluation).

    python benchmarks/seed_metric.py [--images 40] [--height 320] [--width 400]
        [--classes 20] [--repeat 3] [--seed 0]

Synthetic data: per image 2 present classes with random smooth CAMs (dense
(K, H, W), zeros elsewhere), a random smooth GT with ignore pixels. Times
``sweep_histogram`` + ``confusions_from_histogram`` against ``per_threshold_loop``
for the default 19 thresholds in the same run (best of ``--repeat``), checks that both
give identical confusion matrices, and ends with one line of JSON
(``sweep_speedup`` = loop time / sweep time).
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mmwsss.evaluation.metrics.seed_sweep import (  # noqa: E402
    DEFAULT_THRESHOLDS, confusions_from_histogram, per_threshold_loop,
    sweep_histogram)


def _smooth(rng, h, w, cells=6):
    small = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def make_data(n, h, w, k, rng):
    data = []
    for _ in range(n):
        present = rng.choice(k, size=2, replace=False)
        cams = np.zeros((k, h, w), np.float32)
        for c in present:
            m = np.clip(_smooth(rng, h, w), 0, None)
            cams[c] = m / max(float(m.max()), 1e-6)
        # float16 storage as in CAM files, read back as float32
        cams = cams.astype(np.float16).astype(np.float32)
        fields = np.stack([_smooth(rng, h, w) for _ in range(3)])
        gt = np.where(fields.argmax(0) == 0, 0,
                      present[fields.argmax(0) - 1] + 1).astype(np.uint8)
        gt[rng.random((h, w)) < 0.03] = 255
        data.append((cams, gt))
    return data


def run_sweep(data, thr, k):
    hist = None
    for cams, gt in data:
        h = sweep_histogram(cams, gt, thr, k)
        hist = h if hist is None else hist + h
    return confusions_from_histogram(hist)


def run_loop(data, thr, k):
    conf = None
    for cams, gt in data:
        c = per_threshold_loop(cams, gt, thr, k)
        conf = c if conf is None else conf + c
    return conf


def best_time(fn, repeat):
    best, out = float('inf'), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=40)
    p.add_argument('--height', type=int, default=320)
    p.add_argument('--width', type=int, default=400)
    p.add_argument('--classes', type=int, default=20)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    data = make_data(a.images, a.height, a.width, a.classes, rng)
    thr = DEFAULT_THRESHOLDS
    t_sweep, conf_sweep = best_time(lambda: run_sweep(data, thr, a.classes),
                                    a.repeat)
    t_loop, conf_loop = best_time(lambda: run_loop(data, thr, a.classes),
                                  a.repeat)
    assert np.array_equal(conf_sweep, conf_loop), \
        'one-pass sweep and per-threshold loop disagree'
    speedup = t_loop / t_sweep
    print(f'{a.images} images {a.height}x{a.width}, {a.classes} classes, '
          f'{len(thr)} thresholds (best of {a.repeat})')
    print(f'one-pass sweep:     {t_sweep:.3f} s')
    print(f'per-threshold loop: {t_loop:.3f} s')
    print(f'speedup: {speedup:.1f}x (identical confusion matrices)')
    print(json.dumps(dict(
        sweep_speedup=round(speedup, 2),
        sweep_s=round(t_sweep, 4),
        loop_s=round(t_loop, 4),
        images=a.images,
        height=a.height,
        width=a.width,
        classes=a.classes,
        thresholds=len(thr),
        identical=True)))


if __name__ == '__main__':
    main()
