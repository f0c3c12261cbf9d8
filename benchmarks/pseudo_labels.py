"""Benchmark: pseudo-label job throughput (1 vs 2 workers) and DenseCRF wrapper cost.

    python benchmarks/pseudo_labels.py [--images 24] [--repeat 2]
        [--crf-repeat 7] [--seed 0]

Two figures, both measured in one run on CPU (pydensecrf is required):

(a) Pseudo-label throughput of ``run_pseudo_label_job`` with 2 worker processes
    against 1. A synthetic dataset is written to a temporary folder (no repo data,
    no network): ``--images`` (default 24) JPEG images of 500x375 (the VOC size;
    smooth random colour fields with a few filled shapes) and one CAM file each
    (``save_cam``, 20 foreground classes, 1-3 listed classes with smooth blob maps
    max-normalised to [0, 1]). A minimal dataset object (``__len__`` and
    ``get_data_info(i)`` -> ``dict(img_id, img_path)``) feeds ``collect_tasks``
    (``need_image=True``). Rule: ``ThresholdBackground(threshold=0.25, crf='psa',
    crf_unary='one_minus_max')``, i.e. one dense CRF per image (PSA/EDAM pseudo
    labels: the realistic heavy workload). After an untimed warm-up (which also
    imports pydensecrf in the parent, so forked workers start equally warm),
    ``--repeat`` rounds (default 2) each time the job with ``workers=1`` and
    ``workers=2`` into fresh output folders (``overwrite=True, progress=False``),
    the order alternating between rounds (AB, BA, ...). The 2-worker time includes
    starting the process pool, as in real use. Reported: images/s and ms per image
    of each (medians over rounds), ``workers_speedup`` = median 1-worker time /
    median 2-worker time (goal >= 1.8 on a machine with >= 2 free cores), the
    same as the median of the per-round ratios (``workers_speedup_paired``), and
    whether every output of every run has identical label pixels
    (``outputs_identical``, PNGs read with numpy) and identical file bytes
    (``outputs_bytes_identical``). To tell a busy machine from a job that does
    not scale, the CPU seconds of each run (this process plus its reaped pool
    workers, ``os.times``) and the cores in use (CPU s / wall s; ideal: 1 and 2)
    are reported too: equal CPU seconds with fewer than 2 cores in use mean the
    speedup was capped by other load on the machine.

(b) Cost of the ``DenseCRF`` wrapper over a raw pydensecrf call, on a 500x375
    (W=500, H=375) RGB image with 21 labels (softmax of smooth random fields,
    float32) and 10 mean-field iterations. Raw:
    ``d = dcrf.DenseCRF2D(500, 375, 21); d.setUnaryEnergy(unary_from_softmax(p));
    d.addPairwiseGaussian(sxy=3, compat=3); d.addPairwiseBilateral(sxy=80,
    srgb=13, rgbim=img, compat=10); Q = np.array(d.inference(10)).reshape(21, 375,
    500)``; wrapper: ``DenseCRF(iterations=10, gaussian=dict(sxy=3, compat=3),
    bilateral=dict(sxy=80, srgb=13, compat=10))(img, p)``. Same inputs, one untimed
    call of each, then ``--crf-repeat`` (default 7) calls of each, alternating
    (ABBA order). Reported: median ms of each, ``crf_wrapper_ratio`` = median
    wrapper / median raw (goal <= 1.10), the median of the per-pair ratios
    (``crf_wrapper_ratio_paired``), and whether the marginals are identical
    (``crf_identical``, ``np.array_equal``; the max abs difference is printed too).

The machine may be shared: the CPU count and load average are printed. The last
line printed is one line of JSON with the figures.
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
import tempfile
import time

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mmwsss.pseudo import DenseCRF  # noqa: E402
from mmwsss.pseudo.job import collect_tasks, run_pseudo_label_job  # noqa: E402
from mmwsss.utils.cam_io import cam_path, save_cam  # noqa: E402

W, H = 500, 375  # VOC size
K = 20
RULE = dict(type='ThresholdBackground', threshold=0.25, crf='psa',
            crf_unary='one_minus_max')


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)


def _smooth(rng, h, w, cells=6):
    small = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


# ------------------------------------------------------------------ (a)
class SyntheticDataset:
    """Just what ``collect_tasks`` needs: ``__len__`` and ``get_data_info``."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def get_data_info(self, i):
        return dict(self.items[i])


def make_image(rng):
    """Smooth random colour field with a few filled shapes, (H, W, 3) uint8 RGB."""
    img = np.stack([_smooth(rng, H, W, cells=int(rng.integers(3, 7)))
                    for _ in range(3)], -1)
    img = np.clip(img * 255, 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(img)
    for _ in range(int(rng.integers(2, 5))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(40, W - 40)), int(rng.integers(40, H - 40))
        if rng.random() < 0.5:
            r = int(rng.integers(25, 110))
            cv2.circle(img, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
        else:
            dx, dy = int(rng.integers(25, 130)), int(rng.integers(25, 100))
            cv2.rectangle(img, (cx - dx, cy - dy), (cx + dx, cy + dy), colour,
                          -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def make_cams(rng, n_cls):
    """(n_cls, H, W) smooth blobs, each max-normalised to [0, 1]."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cams = []
    for _ in range(n_cls):
        m = np.zeros((H, W), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            sx, sy = rng.uniform(30, 140), rng.uniform(30, 110)
            m += rng.uniform(0.5, 1.0) * np.exp(-0.5 * (((xx - cx) / sx)**2 +
                                                        ((yy - cy) / sy)**2))
        m *= 0.7 + 0.3 * _smooth(rng, H, W)  # some texture
        cams.append(m / max(float(m.max()), 1e-6))
    return np.clip(np.stack(cams), 0, 1)


def make_dataset(root, n, rng):
    img_dir, cam_dir = osp.join(root, 'images'), osp.join(root, 'cams')
    os.makedirs(img_dir)
    os.makedirs(cam_dir)
    items, n_listed = [], []
    for i in range(n):
        img_id = f'2007_{i:06d}'
        img_path = osp.join(img_dir, img_id + '.jpg')
        Image.fromarray(make_image(rng)).save(img_path, quality=90)
        n_cls = int(rng.integers(1, 4))
        labels = rng.choice(K, size=n_cls, replace=False)
        save_cam(cam_path(cam_dir, img_id), make_cams(rng, n_cls), labels,
                 num_classes=K)
        items.append(dict(img_id=img_id, img_path=img_path))
        n_listed.append(n_cls)
    return SyntheticDataset(items), cam_dir, float(np.mean(n_listed))


def read_outputs(out_dir, ids):
    pixels, raw = {}, {}
    for img_id in ids:
        path = osp.join(out_dir, img_id + '.png')
        with Image.open(path) as im:
            pixels[img_id] = np.asarray(im).copy()  # palette indices
        with open(path, 'rb') as f:
            raw[img_id] = f.read()
    return pixels, raw


def bench_job(a, root):
    rng = np.random.default_rng(a.seed)
    t0 = time.perf_counter()
    dataset, cam_dir, mean_cls = make_dataset(root, a.images, rng)
    t_make = time.perf_counter() - t0
    ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]

    def run(workers, out_dir):
        tasks = collect_tasks(dataset, cam_dir, out_dir, need_image=True)
        c0 = os.times()
        t0 = time.perf_counter()
        summary = run_pseudo_label_job(
            tasks, RULE, num_classes=K, workers=workers, overwrite=True,
            progress=False)
        dt = time.perf_counter() - t0
        c1 = os.times()
        assert summary['written'] == len(tasks), summary
        # CPU seconds of this process and of its reaped children (pool workers)
        cpu = sum(c1[k] - c0[k] for k in range(4))
        return dt, cpu

    # warm-up: imports pydensecrf & co. in the parent (inherited by forked workers)
    warm = SyntheticDataset(dataset.items[:2])
    run_pseudo_label_job(
        collect_tasks(warm, cam_dir, osp.join(root, 'warmup'), need_image=True),
        RULE, num_classes=K, workers=1, overwrite=True, progress=False)

    times, cpus, loads = {1: [], 2: []}, {1: [], 2: []}, []
    outputs = []
    for r in range(a.repeat):
        order = (1, 2) if r % 2 == 0 else (2, 1)
        for workers in order:
            out_dir = osp.join(root, f'out_r{r}_w{workers}')
            dt, cpu = run(workers, out_dir)
            times[workers].append(dt)
            cpus[workers].append(cpu)
            loads.append(os.getloadavg()[0])
            outputs.append(read_outputs(out_dir, ids))
    ref_pix, ref_raw = outputs[0]
    identical = all(
        np.array_equal(ref_pix[i], pix[i]) and ref_pix[i].dtype == pix[i].dtype
        for pix, _ in outputs[1:] for i in ids)
    bytes_identical = all(ref_raw[i] == raw[i] for _, raw in outputs[1:]
                          for i in ids)
    labels_seen = sorted(set(np.unique(np.concatenate(
        [ref_pix[i].ravel() for i in ids])).tolist()))
    med1, med2 = float(np.median(times[1])), float(np.median(times[2]))
    cpu1, cpu2 = float(np.median(cpus[1])), float(np.median(cpus[2]))
    return dict(
        t1=times[1], t2=times[2], med1=med1, med2=med2, cpu1=cpu1, cpu2=cpu2,
        util1=float(np.median([c / t for c, t in zip(cpus[1], times[1])])),
        util2=float(np.median([c / t for c, t in zip(cpus[2], times[2])])),
        load_max=float(max(loads)),
        speedup=med1 / med2,
        speedup_paired=float(np.median(
            [a1 / a2 for a1, a2 in zip(times[1], times[2])])),
        identical=identical, bytes_identical=bytes_identical,
        mean_classes=mean_cls, labels_seen=labels_seen, t_make=t_make)


# ------------------------------------------------------------------ (b)
def bench_crf(a):
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    rng = np.random.default_rng(a.seed + 1)
    n = 21
    img = make_image(rng)
    logits = np.stack([_smooth(rng, H, W) for _ in range(n)]) * 8.0
    e = np.exp(logits - logits.max(0, keepdims=True))
    probs = (e / e.sum(0, keepdims=True)).astype(np.float32)
    assert img.shape == (H, W, 3) and probs.shape == (n, H, W)

    def raw():
        d = dcrf.DenseCRF2D(W, H, n)
        d.setUnaryEnergy(unary_from_softmax(probs))
        d.addPairwiseGaussian(sxy=3, compat=3)
        d.addPairwiseBilateral(sxy=80, srgb=13, rgbim=img, compat=10)
        return np.array(d.inference(10)).reshape(n, H, W)

    crf = DenseCRF(iterations=10, gaussian=dict(sxy=3, compat=3),
                   bilateral=dict(sxy=80, srgb=13, compat=10))

    def wrapper():
        return crf(img, probs)

    fns = dict(raw=raw, wrapper=wrapper)
    q = {k: fn() for k, fn in fns.items()}  # warm-up + outputs
    times = dict(raw=[], wrapper=[])
    pair_ratios = []
    for r in range(a.crf_repeat):
        order = ('raw', 'wrapper') if r % 2 == 0 else ('wrapper', 'raw')
        pair = {}
        for k in order:
            t0 = time.perf_counter()
            out = fns[k]()
            pair[k] = time.perf_counter() - t0
            times[k].append(pair[k])
            if not np.array_equal(out, q[k]):
                raise AssertionError(f'{k} CRF is not deterministic')
        pair_ratios.append(pair['wrapper'] / pair['raw'])
    identical = bool(np.array_equal(q['raw'], q['wrapper']))
    max_diff = float(np.abs(q['raw'].astype(np.float64) -
                            q['wrapper'].astype(np.float64)).max())
    med_raw = float(np.median(times['raw']))
    med_wrap = float(np.median(times['wrapper']))
    return dict(
        raw=med_raw, wrapper=med_wrap, ratio=med_wrap / med_raw,
        ratio_paired=float(np.median(pair_ratios)), identical=identical,
        max_diff=max_diff, dtype_raw=str(q['raw'].dtype),
        dtype_wrapper=str(q['wrapper'].dtype),
        argmax_identical=bool(np.array_equal(q['raw'].argmax(0),
                                             q['wrapper'].argmax(0))))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=24,
                   help='synthetic 500x375 images in (a)')
    p.add_argument('--repeat', type=int, default=2,
                   help='rounds of (1 worker, 2 workers) in (a)')
    p.add_argument('--crf-repeat', type=int, default=7,
                   help='timed calls of each CRF variant in (b)')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    seed_all(a.seed)
    cpus = os.cpu_count()
    load = os.getloadavg()
    t_start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix='mmwsss_pl_bench_') as root:
        job = bench_job(a, root)
    crf = bench_crf(a)
    total = time.perf_counter() - t_start

    n = a.images
    ips1, ips2 = n / job['med1'], n / job['med2']
    ms1, ms2 = 1e3 * job['med1'] / n, 1e3 * job['med2'] / n
    print(f'machine: os.cpu_count() = {cpus}, load average '
          f'{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start')
    print(f'(a) pseudo-label job: {n} synthetic {W}x{H} images, {K} classes, '
          f'{job["mean_classes"]:.2f} listed classes per image (data made in '
          f'{job["t_make"]:.1f} s)')
    print(f'    rule: {RULE}')
    print(f'    {a.repeat} round(s), order alternating; times (s): '
          f'1 worker {[round(t, 2) for t in job["t1"]]}, '
          f'2 workers {[round(t, 2) for t in job["t2"]]}')
    print(f'    1 worker:  {ips1:6.2f} images/s  ({ms1:7.1f} ms/image, median)')
    print(f'    2 workers: {ips2:6.2f} images/s  ({ms2:7.1f} ms/image, median)')
    print(f'    workers_speedup: {job["speedup"]:.2f}x (goal >= 1.8; paired '
          f'median {job["speedup_paired"]:.2f}x)')
    print(f'    CPU seconds per run (process + pool workers, median): 1 worker '
          f'{job["cpu1"]:.2f}, 2 workers {job["cpu2"]:.2f} (work ratio '
          f'{job["cpu2"] / job["cpu1"]:.2f}); cores in use (CPU s / wall s): '
          f'1 worker {job["util1"]:.2f}, 2 workers {job["util2"]:.2f}')
    if job['util2'] < 1.6:
        print(f'    NOTE: the 2-worker runs got only {job["util2"]:.2f} cores '
              f'(1-min load average up to {job["load_max"]:.2f} on {cpus} '
              'CPUs): other processes compete for the cores, so the speedup '
              'is capped by the machine, not by the job')
    print(f'    outputs of all {2 * a.repeat} runs: label pixels identical = '
          f'{job["identical"]}, PNG bytes identical = '
          f'{job["bytes_identical"]} (label values seen: '
          f'{job["labels_seen"]})')
    print(f'(b) DenseCRF wrapper vs raw pydensecrf: {W}x{H}, 21 labels, '
          f'10 iterations, median of {a.crf_repeat} each (alternating)')
    print(f'    raw:     {1e3 * crf["raw"]:8.1f} ms')
    print(f'    wrapper: {1e3 * crf["wrapper"]:8.1f} ms')
    print(f'    crf_wrapper_ratio: {crf["ratio"]:.3f} (goal <= 1.10; paired '
          f'median {crf["ratio_paired"]:.3f})')
    print(f'    marginals identical: {crf["identical"]} (max abs diff '
          f'{crf["max_diff"]:.3g}; dtypes raw {crf["dtype_raw"]}, wrapper '
          f'{crf["dtype_wrapper"]}; argmax identical '
          f'{crf["argmax_identical"]})')
    print(f'total time: {total:.1f} s')
    assert job['identical'], '1-worker and 2-worker pseudo labels differ'
    assert crf['identical'], (
        f'wrapper and raw CRF marginals differ (max abs diff '
        f'{crf["max_diff"]:.3g})')
    print(json.dumps(dict(
        workers_speedup=round(job['speedup'], 3),
        crf_wrapper_ratio=round(crf['ratio'], 4),
        workers_speedup_paired=round(job['speedup_paired'], 3),
        crf_wrapper_ratio_paired=round(crf['ratio_paired'], 4),
        images=n,
        rounds=a.repeat,
        images_per_s_1_worker=round(ips1, 3),
        images_per_s_2_workers=round(ips2, 3),
        ms_per_image_1_worker=round(ms1, 1),
        ms_per_image_2_workers=round(ms2, 1),
        cpu_s_1_worker=round(job['cpu1'], 3),
        cpu_s_2_workers=round(job['cpu2'], 3),
        cores_used_1_worker=round(job['util1'], 2),
        cores_used_2_workers=round(job['util2'], 2),
        outputs_identical=job['identical'],
        outputs_bytes_identical=job['bytes_identical'],
        crf_ms_wrapper=round(1e3 * crf['wrapper'], 2),
        crf_ms_raw=round(1e3 * crf['raw'], 2),
        crf_repeat=a.crf_repeat,
        crf_identical=crf['identical'],
        crf_max_abs_diff=crf['max_diff'],
        cpu_count=cpus,
        loadavg_start=[round(v, 2) for v in load],
        loadavg_max_during_a=round(job['load_max'], 2),
        seed=a.seed,
        total_s=round(total, 1))))


if __name__ == '__main__':
    main()
