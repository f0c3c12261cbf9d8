"""Benchmark: cost of a GAIN training step against a plain CAM step (time, memory).

    python benchmarks/gain_overhead.py [--steps 12] [--warmup 2] [--batch 16]
        [--vgg-steps 6] [--vgg-batch 2] [--vgg-size 160] [--no-vgg] [--seed 0]
        [--pool 4]

GAIN (Li et al., "Tell Me Where to Look: Guided Attention Inference Network", CVPR
2018) adds to every training step the attention of each (image, GT class) pair, a
soft mask per pair and a second forward / backward pass of the whole network on the
masked images (the attention-mining stream). All figures are measured in one run
(CPU, ``torch`` thread count as set, e.g. ``OMP_NUM_THREADS=1``):

(a) The toy classifier (``configs/toy/cam_r18_toy.py``: dilated ResNet-18 with 16
    base channels + CAM head, 8 classes) against the same network with its head
    wrapped in ``GAINHead`` (``configs/toy/gain_r18_toy.py``, ``am_start_iter=0`` so
    that L_am is on in every step), on the same random batches: ``--batch`` (16,
    the config's) uint8 images 3x128x128, 1 / 2 / 3 GT classes with the toy train
    split's frequencies (180 / 131 / 89 of 400 images: 1.77 pairs per image).
    Variants: ``cam``; ``gain`` (closed-form Grad-CAM, the config's default for the
    CAM head); ``gain_autograd`` (``attention='autograd'``: Grad-CAM by
    ``torch.autograd.grad``, the path of heads without a closed form); ``gain_ext_p``
    (``configs/toy/gain_ext-p_r18_toy.py``: the pixel attention loss on 2 images of
    each batch that carry a GT mask, as its StrongMixSampler gives). One step =
    ``model.train_step`` through an ``OptimWrapper`` (the config's AdamW):
    preprocessing, forward, loss, backward, optimizer step, as the runner does.
(b) A VGG16-size setting (optional, ``--no-vgg`` skips it): the OAA/CAM VGG16
    classifier of ``configs/_base_/models/cam_vgg16.py`` (``DeepLabVGG16``
    ``variant='oaa'``, full width, random weights, 3 extra 3x3/512 convs + CAM
    head, 20 classes; SGD with momentum 0.9) at ``--vgg-batch`` x 3 x
    ``--vgg-size``^2, 1 and 2 GT classes per image in turn (1.5 pairs per image,
    as VOC): ``cam`` and ``gain``.
(c) The VOC GAIN classifier (``configs/_base_/models/gain_vgg16.py``: VGG16 to
    relu5_3 + VGG16's own fc6-fc8 head, ``attention='autograd'``, random weights)
    against its ``VGGFCHead`` alone (L_cl only, the "cam" of this setting), same
    inputs as (b).

Each variant has its own model (same initial weights) and optimizer. After
``--warmup`` untimed steps of each, ``--steps`` rounds are timed; every round runs
each variant once, in an order rotated by one every round (so that every variant
is as often first, second, ...). Reported per variant: the median step time, the
ratio of medians to ``cam`` (``*_ratio``; the goal for ``gain`` is <= 2.5), the
median over rounds of the within-round ratio (``*_ratio_paired``, robust to drifts
of a shared machine's load), and ``*_ratio_per_stream_image`` = the ratio divided
by ``1 + pairs_per_image``: a GAIN step runs the network (forward and backward) on
each image and on one masked image per (image, GT class) pair, so ``1 + pairs per
image`` is the ratio to expect from the method itself (2.77 on the toy data, about
2.5 on VOC with 1.5 classes per image); the quotient is the implementation's cost
beyond that (attention, masks, extra losses).

Memory: the bytes of the activations autograd saves for the backward pass of one
step (``torch.autograd.graph.saved_tensors_hooks``, each storage counted once, the
parameters left out), which is what GAIN adds to the peak (parameters, gradients
and optimizer state are the same for every variant); ``*_mem_ratio`` = against
``cam``. This does not depend on the device.

The last line printed is one line of JSON with the figures.
"""
import argparse
import json
import os.path as osp
import random
import sys
import time

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MessageHub, MMLogger  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

import mmwsss  # noqa: E402,F401
from mmwsss.registry import MODELS  # noqa: E402
from mmwsss.structures import WSSSDataSample  # noqa: E402
from mmwsss.utils import register_all_modules  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _step_timing import SavedTensors  # noqa: E402

REPO = osp.join(osp.dirname(osp.abspath(__file__)), '..')
TOY = osp.join(REPO, 'configs', 'toy')
#: GT classes per image on the toy train split: 1, 2, 3 (180 / 131 / 89 of 400)
TOY_CLASS_COUNTS = (180, 131, 89)
NUM_STRONG = 2  # configs/toy/gain_ext-p_r18_toy.py: strong images per batch
MB = 2.**20


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def toy_model_cfg(name, **head):
    cfg = Config.fromfile(osp.join(TOY, name)).model
    cfg.head.update(head)
    return cfg


def vgg_model_cfg(gain):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'models', 'cam_vgg16.py')).model
    cfg.backbone.init_cfg = None  # random weights: no file needed
    head = dict(type='CAMHead', in_channels=512, num_classes=20,
                num_extra_convs=3, extra_channels=512, init_std=0.01)
    cfg.head = dict(type='GAINHead', cls_head=head, am_start_iter=0) if gain \
        else head
    return cfg


def vgg_fc_model_cfg(gain):
    """The VOC GAIN classifier (``configs/_base_/models/gain_vgg16.py``: VGG16 to
    relu5_3 + its fc6-fc8 head, Grad-CAM by autograd), random weights; without
    ``gain`` its ``VGGFCHead`` alone (L_cl only)."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'models', 'gain_vgg16.py')).model
    cfg.backbone.init_cfg = None
    cfg.head.cls_head.init_cfg = None
    if gain:
        cfg.head.am_start_iter = 0
    else:
        cfg.head = cfg.head.cls_head
    return cfg


def build(cfg, reference=None):
    """The model; with ``reference`` (the CAM model), its weights copied in (the
    GAIN head's inner head takes the CAM head's)."""
    model = MODELS.build(cfg)
    model.init_weights()
    if reference is not None:
        state = {}
        own = model.state_dict()
        for k, v in reference.state_dict().items():
            target = k if k in own else k.replace('head.', 'head.cls_head.', 1)
            state[target] = v
        model.load_state_dict(state, strict=True)
    model.train()
    return model


def make_batches(n, batch, size, num_classes, counts, strong, rng,
                 cycle=False):
    """``n`` batches of random uint8 images with GT labels: 1, 2, ... classes with
    frequencies ``counts`` (random; ``cycle``: 1, 2, ... in turn, for counts of
    equal frequency); the first ``strong`` images of a batch carry a GT mask (the
    ``gt_sem_seg`` of GAIN_ext's pixel images: each GT class a random square
    region)."""
    p = np.asarray(counts, float) / np.sum(counts)
    batches = []
    for b in range(n):
        inputs, samples = [], []
        for i in range(batch):
            inputs.append(torch.from_numpy(
                rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
            ds = WSSSDataSample(metainfo=dict(
                img_id=f'img_{b:03d}_{i:02d}', img_shape=(size, size),
                ori_shape=(size, size), pad_shape=(size, size),
                scale_factor=(1.0, 1.0)))
            k = (b * batch + i) % len(p) + 1 if cycle else \
                int(rng.choice(len(p), p=p)) + 1
            classes = rng.choice(num_classes, size=k, replace=False)
            gt = torch.zeros(num_classes)
            gt[torch.from_numpy(classes)] = 1
            ds.gt_label = gt
            if i < strong:
                seg = torch.zeros(1, size, size, dtype=torch.long)
                for c in classes:
                    y, x = rng.integers(0, size // 2, 2)
                    seg[0, y:y + size // 3, x:x + size // 3] = int(c) + 1
                ds.gt_sem_seg = PixelData(data=seg)
                ds.set_metainfo(dict(strong_pixel=True))
            samples.append(ds)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def strip_masks(batches):
    """The same batches without the GT masks (for the variants without
    extra supervision)."""
    out = []
    for data in batches:
        samples = []
        for ds in data['data_samples']:
            new = WSSSDataSample(metainfo={
                k: v for k, v in ds.metainfo.items() if k != 'strong_pixel'})
            new.gt_label = ds.gt_label
            samples.append(new)
        out.append(dict(inputs=data['inputs'], data_samples=samples))
    return out


def pairs_per_image(batches):
    """(image, GT class) pairs per image of the batches: the images the
    attention-mining stream adds per image of the classification stream."""
    labels = [ds.gt_label.sum().item() for data in batches
              for ds in data['data_samples']]
    return float(np.mean(labels))


def saved_bytes(model, optim, data):
    """Bytes of the activations autograd saves during one training step: the
    tensors saved for the backward pass, each storage once, without the
    parameters (a convolution saves its weight)."""
    with SavedTensors(model) as saved:
        model.train_step(data, optim)
    return saved.nbytes


def bench(variants, steps, warmup):
    """Rotated rounds of one train step per variant; returns per variant the
    times (s) and the within-round ratios to the first variant."""
    names = list(variants)
    times = {n: [] for n in names}
    paired = {n: [] for n in names}
    cursor = {n: 0 for n in names}

    def step(name):
        model, optim, data = variants[name]
        batch = data[cursor[name] % len(data)]
        cursor[name] += 1
        t0 = time.perf_counter()
        log = model.train_step(batch, optim)
        dt = time.perf_counter() - t0
        loss = float(torch.as_tensor(log['loss']).detach())
        if not np.isfinite(loss):
            raise RuntimeError(f'{name}: non-finite loss {loss}')
        return dt

    for _ in range(warmup):
        for n in names:
            step(n)
    for r in range(steps):
        k = r % len(names)
        order = names[k:] + names[:k]
        round_t = {n: step(n) for n in order}
        for n in names:
            times[n].append(round_t[n])
            paired[n].append(round_t[n] / round_t[names[0]])
    return {n: dict(median=float(np.median(times[n])),
                    paired=float(np.median(paired[n])), n=len(times[n]))
            for n in names}


def run_setting(label, cfgs, make_optim, batches_strong, a, steps, warmup):
    """Build the variants of one setting, measure the saved bytes and the step
    times; print and return the figures."""
    seed_all(a.seed)
    models = {}
    ref = None
    for name, cfg in cfgs.items():
        torch.manual_seed(a.seed)
        models[name] = build(cfg, ref)
        if ref is None:
            ref = models[name]
    plain = strip_masks(batches_strong)
    variants = {}
    for name, model in models.items():
        data = batches_strong if name == 'gain_ext_p' else plain
        variants[name] = (model, OptimWrapper(make_optim(model)), data)
    mem = {}
    for name, (model, optim, data) in variants.items():
        mem[name] = saved_bytes(model, optim, data[0])
    res = bench(variants, steps, warmup)
    base = res['cam']['median']
    pairs = pairs_per_image(plain)
    print(f'{label}; {pairs:.3f} (image, class) pairs per image: a GAIN step '
          f'runs the network on {1 + pairs:.3f}x the images of a CAM step')
    for name in variants:
        r = res[name]
        print(f'    {name:14s} {r["median"] * 1e3:9.1f} ms/step (median of '
              f'{r["n"]}); x cam: {r["median"] / base:6.3f} (paired '
              f'{r["paired"]:6.3f}); saved for backward '
              f'{mem[name] / MB:8.1f} MB (x cam {mem[name] / mem["cam"]:5.2f})')
    for name in variants:
        if name != 'cam':
            print(f'    {name}: ratio / (1 + pairs per image) = '
                  f'{res[name]["median"] / base / (1 + pairs):.3f} (the cost '
                  'beyond running the network on the masked images)')
    return res, mem, pairs


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=12,
                   help='timed rounds of the toy setting (one step per variant)')
    p.add_argument('--warmup', type=int, default=2,
                   help='untimed steps per variant first')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--pool', type=int, default=4,
                   help='distinct batches cycled over')
    p.add_argument('--vgg-steps', type=int, default=6,
                   help='timed rounds of the VGG16 setting')
    p.add_argument('--vgg-batch', type=int, default=2)
    p.add_argument('--vgg-size', type=int, default=160)
    p.add_argument('--no-vgg', action='store_true',
                   help='skip the VGG16-size settings (b) and (c)')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    register_all_modules(init_default_scope=True)
    # the current logger: no weight-initialisation report per model
    MMLogger.get_instance('gain_overhead', log_level='WARNING')
    MessageHub.get_instance('gain_overhead')
    t_start = time.perf_counter()
    rng = np.random.default_rng(a.seed)

    toy = {
        'cam': toy_model_cfg('cam_r18_toy.py'),
        'gain': toy_model_cfg('gain_r18_toy.py', am_start_iter=0),
        'gain_autograd': toy_model_cfg('gain_r18_toy.py', am_start_iter=0,
                                       attention='autograd'),
        'gain_ext_p': toy_model_cfg('gain_ext-p_r18_toy.py', am_start_iter=0,
                                    ext_start_iter=0),
    }
    toy_batches = make_batches(a.pool, a.batch, 128, 8, TOY_CLASS_COUNTS,
                               NUM_STRONG, rng)

    def adamw(model):  # configs/toy/cam_r18_toy.py (without the lr multipliers)
        return torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)

    toy_res, toy_mem, toy_pairs = run_setting(
        f'(a) toy classifier, batch {a.batch} x 3x128x128, '
        f'{sum(c * n for c, n in zip((1, 2, 3), TOY_CLASS_COUNTS)) / 400:.2f} '
        f'GT classes per image, torch threads {torch.get_num_threads()}, '
        f'{a.warmup} warm-up + {a.steps} rotated rounds',
        toy, adamw, toy_batches, a, a.steps, a.warmup)
    out = dict(pairs_per_image=round(toy_pairs, 4))
    base = toy_res['cam']['median']
    for name, r in toy_res.items():
        if name != 'cam':
            out[f'{name}_ratio'] = round(r['median'] / base, 4)
            out[f'{name}_ratio_paired'] = round(r['paired'], 4)
            out[f'{name}_ratio_per_stream_image'] = round(
                r['median'] / base / (1 + toy_pairs), 4)
    for name, r in toy_res.items():
        out[f'{name}_ms'] = round(r['median'] * 1e3, 1)
    for name, m in toy_mem.items():
        out[f'{name}_saved_mb'] = round(m / MB, 2)
        if name != 'cam':
            out[f'{name}_mem_ratio'] = round(m / toy_mem['cam'], 3)

    if not a.no_vgg:
        vgg = {'cam': vgg_model_cfg(False), 'gain': vgg_model_cfg(True)}
        vgg_batches = make_batches(a.pool, a.vgg_batch, a.vgg_size, 20, (1, 1),
                                   0, rng, cycle=True)

        def sgd(model):
            return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        vgg_res, vgg_mem, vgg_pairs = run_setting(
            f'(b) VGG16 (DeepLabVGG16 oaa) + CAM head, batch {a.vgg_batch} x '
            f'3x{a.vgg_size}x{a.vgg_size}, 1 and 2 GT classes in turn, '
            f'{min(a.warmup, 1)} warm-up + {a.vgg_steps} rotated rounds',
            vgg, sgd, vgg_batches, a, a.vgg_steps, min(a.warmup, 1))
        out['vgg_gain_ratio'] = round(
            vgg_res['gain']['median'] / vgg_res['cam']['median'], 4)
        out['vgg_gain_ratio_paired'] = round(vgg_res['gain']['paired'], 4)
        out['vgg_pairs_per_image'] = round(vgg_pairs, 4)
        out['vgg_gain_ratio_per_stream_image'] = round(
            out['vgg_gain_ratio'] / (1 + vgg_pairs), 4)
        out['vgg_cam_ms'] = round(vgg_res['cam']['median'] * 1e3, 1)
        out['vgg_gain_ms'] = round(vgg_res['gain']['median'] * 1e3, 1)
        out['vgg_gain_mem_ratio'] = round(vgg_mem['gain'] / vgg_mem['cam'], 3)
        out['vgg_cam_saved_mb'] = round(vgg_mem['cam'] / MB, 2)
        out['vgg_gain_saved_mb'] = round(vgg_mem['gain'] / MB, 2)
        fc = {'cam': vgg_fc_model_cfg(False), 'gain': vgg_fc_model_cfg(True)}
        fc_res, fc_mem, fc_pairs = run_setting(
            f'(c) the VOC GAIN classifier (configs/_base_/models/gain_vgg16.py: '
            f'VGG16 to relu5_3 + fc6-fc8, autograd Grad-CAM) against its fc head '
            f'alone ("cam": L_cl only), batch {a.vgg_batch} x '
            f'3x{a.vgg_size}x{a.vgg_size}, 1 and 2 GT classes in turn, '
            f'{min(a.warmup, 1)} warm-up + {a.vgg_steps} rotated rounds',
            fc, sgd, vgg_batches, a, a.vgg_steps, min(a.warmup, 1))
        out['vggfc_gain_ratio'] = round(
            fc_res['gain']['median'] / fc_res['cam']['median'], 4)
        out['vggfc_gain_ratio_paired'] = round(fc_res['gain']['paired'], 4)
        out['vggfc_gain_ratio_per_stream_image'] = round(
            out['vggfc_gain_ratio'] / (1 + fc_pairs), 4)
        out['vggfc_cam_ms'] = round(fc_res['cam']['median'] * 1e3, 1)
        out['vggfc_gain_ms'] = round(fc_res['gain']['median'] * 1e3, 1)
        out['vggfc_gain_mem_ratio'] = round(fc_mem['gain'] / fc_mem['cam'], 3)
        out['vggfc_cam_saved_mb'] = round(fc_mem['cam'] / MB, 2)
        out['vggfc_gain_saved_mb'] = round(fc_mem['gain'] / MB, 2)
    total = time.perf_counter() - t_start
    print(f'goal: gain_ratio <= 2.5 -> {out["gain_ratio"]:.3f}'
          + ('' if a.no_vgg else f' (VGG16 + CAM head '
             f'{out["vgg_gain_ratio"]:.3f}, VGG16 + fc head '
             f'{out["vggfc_gain_ratio"]:.3f})'))
    print(f'total {total:.1f} s')
    out.update(steps=a.steps, warmup=a.warmup, batch=a.batch,
               vgg=not a.no_vgg, vgg_steps=a.vgg_steps, vgg_batch=a.vgg_batch,
               vgg_size=a.vgg_size, threads=torch.get_num_threads(),
               seed=a.seed, total_s=round(total, 1))
    print(json.dumps(out))


if __name__ == '__main__':
    main()
