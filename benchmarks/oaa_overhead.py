"""Benchmark: cost of online attention accumulation (OAAHook) in time and memory.

    python benchmarks/oaa_overhead.py [--width 0.5] [--steps 14] [--block 1]
        [--warmup 2] [--batch 1] [--pool 6] [--images 10582] [--updates 500]
        [--repeat 5] [--seed 0]

Three figures, all measured in one run (CPU, ``torch`` default thread count):

(a) Train-step overhead. A randomly initialised OAA classifier
    (``DeepLabVGG16(variant='oaa', width=W)`` + ``CAMHead`` with 3 extra convs, 20
    classes; no pretrained weights), SGD (lr 1e-3, momentum 0.9). One step =
    ``model.loss`` on a batch of random 3x224x298 inputs (the OAA recipe: short side
    224, VOC 4:3 image 375x500) + backward + optimizer step. "With hook" also sets
    ``model.record_train_outputs = True`` and calls
    ``OAAHook.after_train_iter`` after the step; the hook is
    ``OAAHook(gate='none', start_epoch=0, canonical_short_side=224)`` so every
    (image, GT class) map is accumulated (worst case); image ids cycle over a pool
    so both the first-visit and the max-fusion paths run. The two variants run in
    alternating blocks (ABBA order) after a warm-up; reported: median step time of
    each, ``hook_overhead_ratio`` = median(with) / median(without) (goal <= 1.05),
    ``hook_overhead_ratio_paired`` = median over adjacent (with, without) block
    pairs of their time ratio (robust to slow drift of the machine's load),
    and ``hook_ms_per_image`` = median time of the ``after_train_iter`` calls alone
    divided by the batch size. ``hook_overhead_ratio_from_hook_time`` =
    1 + median hook time / median step time without the hook, a low-noise
    estimate of the same ratio (the step medians are noisy on a shared machine).
    A full-width VGG-16 step is slow on a small CPU, hence ``--width`` (default
    0.5); the hook's own cost does not depend on the width.

(b) State memory of a VOC12 train_aug-sized state: 10,582 images, 1 + Poisson(0.5)
    GT classes each (mean about 1.5, seeded), every map in the canonical frame
    ``canonical_shape((375, 500), 224, 8)`` = 28x37 filled through
    ``AttentionStore.update`` with random maps. Reported: ``store.nbytes`` and the
    size of ``torch.save(hook.state_dict())`` (what goes into a checkpoint), in MB
    (2**20 bytes); ``state_mb_voc_aug`` is the serialized size (goal <= 150 MB).
    Also the same at the original size / 8 frame (``canonical_short_side=None``,
    46x62) for reference, and with the attention-drop "previous" store (OAA++),
    which doubles the state. Note: ``torch.save`` (pickle protocol 2) writes a
    numpy uint8 buffer as a latin-1 string, so each byte >= 128 takes 2 bytes:
    the serialized size of random maps is about 1.5x ``nbytes`` (real maps, mostly
    near 0, come closer to 1x; torch tensors would be stored 1:1).

(c) Update speed: ``--updates`` (default 500) (image, class) fusion updates of 28x37
    maps, from a float map in [0, 1], into an ``AttentionStore`` holding an initial
    map for each pair, against the official code's PNG way (``{index}_{class}.png``:
    float map -> uint8, ``cv2.imread(png, IMREAD_GRAYSCALE)``, ``np.maximum``,
    ``cv2.imwrite``) in a temporary directory whose initial PNGs are written
    outside the timing. Alternated ``--repeat`` times; medians per update;
    ``speedup_vs_png`` = PNG time / store time.

The last line printed is one line of JSON with the figures.
"""
import argparse
import io
import json
import logging
import os.path as osp
import random
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import mmwsss.models  # noqa: E402,F401  (registers the modules)
from mmwsss.engine.hooks.attention_store import AttentionStore  # noqa: E402
from mmwsss.engine.hooks.oaa_hook import OAAHook, canonical_shape  # noqa: E402
from mmwsss.models.classifiers.ws_classifier import WSClassifier  # noqa: E402
from mmwsss.structures import WSSSDataSample  # noqa: E402

K = 20
ORI_SHAPE = (375, 500)
IMG_SHAPE = (224, 298)  # short side 224, aspect of the 375x500 original
MB = 2.**20


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_runner(model, work_dir):
    return SimpleNamespace(
        model=model, epoch=0, max_epochs=15, iter=0, max_iters=10**6,
        hooks=[], seed=0, work_dir=work_dir, train_loop=SimpleNamespace(),
        logger=logging.getLogger('oaa_overhead'), _resume=False)


def new_hook(short_side=224):
    return OAAHook(gate='none', start_epoch=0, canonical_short_side=short_side,
                   export_dir=None, log_stats=False)


# ------------------------------------------------------------------ (a)
def build_model(width):
    model = WSClassifier(
        backbone=dict(type='DeepLabVGG16', variant='oaa', width=width),
        head=dict(type='CAMHead', in_channels=int(512 * width), num_classes=K,
                  num_extra_convs=3, extra_channels=int(512 * width)))
    model.train()
    return model


def make_batches(pool, batch, rng):
    """``pool`` batches of random inputs with data samples of distinct image ids."""
    batches = []
    sf = (IMG_SHAPE[1] / ORI_SHAPE[1], IMG_SHAPE[0] / ORI_SHAPE[0])
    for p in range(pool):
        inputs = torch.from_numpy(
            rng.standard_normal((batch, 3) + IMG_SHAPE).astype(np.float32))
        samples = []
        for b in range(batch):
            ds = WSSSDataSample(metainfo=dict(
                img_id=f'img_{p:04d}_{b}', ori_shape=ORI_SHAPE,
                img_shape=IMG_SHAPE, scale_factor=sf))
            gt = torch.zeros(K)
            gt[rng.choice(K, size=int(rng.integers(1, 3)), replace=False)] = 1
            ds.gt_label = gt
            samples.append(ds)
        batches.append((inputs, samples))
    return batches


def bench_step(a):
    model = build_model(a.width)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    rng = np.random.default_rng(a.seed)
    batches = make_batches(a.pool, a.batch, rng)
    hook = new_hook(224)
    with tempfile.TemporaryDirectory() as work_dir:
        runner = make_runner(model, work_dir)
        hook.before_train(runner)  # sets record_train_outputs
        cursor = [0]

        def step(with_hook):
            inputs, samples = batches[cursor[0] % len(batches)]
            cursor[0] += 1
            model.record_train_outputs = with_hook
            t0 = time.perf_counter()
            losses = model.loss(inputs, samples)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            th = time.perf_counter()
            if with_hook:
                hook.after_train_iter(runner, runner.iter)
            t1 = time.perf_counter()
            runner.iter += 1
            return t1 - t0, (t1 - th if with_hook else None)

        for i in range(a.warmup):  # one of each, not timed
            step(True)
            step(False)
        times = {True: [], False: []}
        hook_times, pair_ratios = [], []
        n_blocks = max(1, -(-a.steps // a.block))
        for blk in range(n_blocks):
            order = (False, True) if blk % 2 == 0 else (True, False)  # ABBA
            block_times = {}
            for variant in order:
                block_times[variant] = []
                for _ in range(a.block):
                    dt, dh = step(variant)
                    times[variant].append(dt)
                    block_times[variant].append(dt)
                    if dh is not None:
                        hook_times.append(dh)
            pair_ratios.append(
                float(np.median(block_times[True])) /
                float(np.median(block_times[False])))
        model.record_train_outputs = False
    med_with = float(np.median(times[True]))
    med_without = float(np.median(times[False]))
    med_hook = float(np.median(hook_times))
    return dict(
        med_with=med_with, med_without=med_without, med_hook=med_hook,
        pair_ratio=float(np.median(pair_ratios)),
        mean_hook=float(np.mean(hook_times)),
        n_with=len(times[True]), n_without=len(times[False]),
        maps=len(hook.cumulative),
        visits=sum(hook.cumulative.count(i, c)
                   for i, c in hook.cumulative.keys()),
        images=len(hook.ori_shapes))


# ------------------------------------------------------------------ (b)
def voc_aug_labels(n, rng):
    """GT classes per image: 1 + Poisson(0.5) distinct classes (mean ~1.5)."""
    counts = np.minimum(1 + rng.poisson(0.5, size=n), K)
    return [rng.choice(K, size=int(c), replace=False) for c in counts]


def fill_state(short_side, labels, rng, with_previous):
    hook = new_hook(short_side)
    hook.num_classes = K
    if with_previous:
        hook.previous = AttentionStore('last')
    shape = canonical_shape(ORI_SHAPE, short_side, 8)
    for n, classes in enumerate(labels):
        img_id = f'2007_{n:06d}'
        hook.ori_shapes[img_id] = ORI_SHAPE
        for c in classes:
            amap = rng.random(shape, dtype=np.float32)
            hook.cumulative.update(img_id, int(c), amap)
            if with_previous:
                hook.previous.update(img_id, int(c), amap)
    buf = io.BytesIO()
    torch.save(hook.state_dict(), buf)
    return dict(shape=shape, maps=len(hook.cumulative),
                nbytes=hook.state_nbytes(), serialized=buf.tell())


def bench_state(a):
    rng = np.random.default_rng(a.seed + 1)
    labels = voc_aug_labels(a.images, rng)
    res = dict(mean_classes=float(np.mean([len(c) for c in labels])))
    res['c224'] = fill_state(224, labels, rng, False)
    res['orig'] = fill_state(None, labels, rng, False)
    res['c224_prev'] = fill_state(224, labels, rng, True)
    return res


# ------------------------------------------------------------------ (c)
def bench_update(a):
    rng = np.random.default_rng(a.seed + 2)
    shape = canonical_shape(ORI_SHAPE, 224, 8)  # 28x37
    m = a.updates
    keys = [(f'img_{i // 2:05d}', i % 2 * 7) for i in range(m)]
    init = rng.random((m, ) + shape, dtype=np.float32)
    new = [rng.random((a.repeat, ) + shape, dtype=np.float32) for _ in range(m)]
    store = AttentionStore('max')
    for (img_id, c), amap in zip(keys, init):
        store.update(img_id, c, amap)
    t_store, t_png = [], []
    with tempfile.TemporaryDirectory() as accu_dir:
        paths = []
        for n, ((img_id, c), amap) in enumerate(zip(keys, init)):
            path = osp.join(accu_dir, f'{n}_{c}.png')
            cv2.imwrite(path, np.array(amap * 255, dtype=np.uint8))
            paths.append(path)

        def run_store(r):
            t0 = time.perf_counter()
            for (img_id, c), amaps in zip(keys, new):
                store.update(img_id, c, amaps[r])
            return (time.perf_counter() - t0) / m

        def run_png(r):
            t0 = time.perf_counter()
            for path, amaps in zip(paths, new):
                att = np.array(amaps[r] * 255, dtype=np.uint8)
                old = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
                cv2.imwrite(path, np.maximum(old, att))
            return (time.perf_counter() - t0) / m

        for r in range(a.repeat):
            if r % 2 == 0:
                t_store.append(run_store(r))
                t_png.append(run_png(r))
            else:
                t_png.append(run_png(r))
                t_store.append(run_store(r))
    return dict(store=float(np.median(t_store)), png=float(np.median(t_png)),
                shape=shape, maps=len(store))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--width', type=float, default=0.5,
                   help='VGG-16 channel multiplier for (a)')
    p.add_argument('--steps', type=int, default=14,
                   help='timed steps per variant in (a)')
    p.add_argument('--block', type=int, default=1,
                   help='consecutive steps of one variant in (a)')
    p.add_argument('--warmup', type=int, default=2,
                   help='untimed warm-up steps per variant in (a)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--pool', type=int, default=6,
                   help='distinct batches (image ids) cycled over in (a)')
    p.add_argument('--images', type=int, default=10582,
                   help='images of the state in (b) (VOC12 train_aug)')
    p.add_argument('--updates', type=int, default=500,
                   help='(image, class) updates in (c)')
    p.add_argument('--repeat', type=int, default=5,
                   help='alternated repetitions in (c)')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    seed_all(a.seed)
    t_start = time.perf_counter()

    s = bench_step(a)
    ratio = s['med_with'] / s['med_without']
    hook_ms = s['med_hook'] * 1e3 / a.batch
    ratio_hook = 1 + s['med_hook'] / s['med_without']
    print(f'(a) train step, DeepLabVGG16 oaa width={a.width}, batch {a.batch} x '
          f'3x{IMG_SHAPE[0]}x{IMG_SHAPE[1]}, torch threads '
          f'{torch.get_num_threads()}, {s["n_without"]}+{s["n_with"]} timed steps '
          f'in blocks of {a.block} (ABBA), {a.warmup} warm-up per variant')
    print(f'    without hook: {s["med_without"] * 1e3:9.1f} ms/step (median)')
    print(f'    with hook:    {s["med_with"] * 1e3:9.1f} ms/step (median)')
    print(f'    ratio:        {ratio:9.4f}  (goal <= 1.05); median of adjacent '
          f'block-pair ratios {s["pair_ratio"]:.4f}')
    print(f'    hook alone:   {hook_ms:9.3f} ms/image (median; mean '
          f'{s["mean_hook"] * 1e3 / a.batch:.3f}), i.e. ratio '
          f'{ratio_hook:.4f} from the hook time')
    print(f'    hook state: {s["maps"]} maps of {s["images"]} images, '
          f'{s["visits"]} accumulated visits')

    st = bench_state(a)
    c, o, cp = st['c224'], st['orig'], st['c224_prev']
    print(f'(b) state for {a.images} images, {c["maps"]} (image, class) maps '
          f'(mean {st["mean_classes"]:.3f} classes/image)')
    print(f'    224/8 frame {c["shape"][0]}x{c["shape"][1]}: store '
          f'{c["nbytes"] / MB:.2f} MB, torch.save(state_dict) '
          f'{c["serialized"] / MB:.2f} MB  (goal <= 150 MB)')
    print(f'    + attention-drop previous store: store {cp["nbytes"] / MB:.2f} MB, '
          f'serialized {cp["serialized"] / MB:.2f} MB')
    print(f'    (serialized/store = {c["serialized"] / c["nbytes"]:.2f}: the map '
          'bytes go in a uint8 tensor; ids, shapes and counts add the rest)')
    print(f'    original/8 frame {o["shape"][0]}x{o["shape"][1]}: store '
          f'{o["nbytes"] / MB:.2f} MB, serialized {o["serialized"] / MB:.2f} MB')

    u = bench_update(a)
    speedup = u['png'] / u['store']
    print(f'(c) {a.updates} fusion updates of {u["shape"][0]}x{u["shape"][1]} maps '
          f'(median of {a.repeat}, alternated)')
    print(f'    AttentionStore.update:        {u["store"] * 1e6:8.1f} us/update')
    print(f'    PNG imread-maximum-imwrite:   {u["png"] * 1e6:8.1f} us/update')
    print(f'    speedup: {speedup:.1f}x ({u["maps"]} maps)')
    total = time.perf_counter() - t_start
    print(f'total {total:.1f} s')
    print(json.dumps(dict(
        hook_overhead_ratio=round(ratio, 4),
        hook_overhead_ratio_paired=round(s['pair_ratio'], 4),
        hook_overhead_ratio_from_hook_time=round(ratio_hook, 5),
        hook_ms_per_image=round(hook_ms, 4),
        step_ms_without=round(s['med_without'] * 1e3, 2),
        step_ms_with=round(s['med_with'] * 1e3, 2),
        state_mb_voc_aug=round(c['serialized'] / MB, 2),
        state_store_mb_voc_aug=round(c['nbytes'] / MB, 2),
        state_mb_voc_aug_with_previous=round(cp['serialized'] / MB, 2),
        state_mb_voc_aug_orig_stride8=round(o['serialized'] / MB, 2),
        state_maps=c['maps'],
        speedup_vs_png=round(speedup, 2),
        store_us_per_update=round(u['store'] * 1e6, 2),
        png_us_per_update=round(u['png'] * 1e6, 2),
        steps=a.steps,
        width=a.width,
        batch=a.batch,
        threads=torch.get_num_threads(),
        images=a.images,
        updates=a.updates,
        seed=a.seed,
        total_s=round(total, 1))))


if __name__ == '__main__':
    main()
