"""Shared scaffolding of the training-step benchmarks (``edam_overhead.py``,
``vwl_overhead.py``; ``gain_overhead.py`` uses ``SavedTensors``): their command
line, variants of one setting built on one shared backbone module,
random uint8 batches with multi-hot labels, one timed step (preprocessing, ``loss``,
backward), the memory / FLOPs of an untimed step, and rotated rounds that time every
variant once per round (medians and within-round ratios to the first variant, robust
to the drifting load of a shared machine).
"""
import argparse
import json
import os
import random
import threading
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from mmwsss.registry import MODELS
from mmwsss.structures import WSSSDataSample

MB = 2.**20
PAGE = os.sysconf('SC_PAGE_SIZE')


def step_parser(doc, crop, batch_help='VOC images per step'):
    """The command line of a two-setting (VOC, toy) step benchmark."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument('--settings', nargs='+', default=['voc', 'toy'],
                   choices=['voc', 'toy'])
    p.add_argument('--rounds', type=int, default=2,
                   help='timed rounds of the VOC setting (one step per variant)')
    p.add_argument('--toy-rounds', type=int, default=12,
                   help='timed rounds of the toy setting')
    p.add_argument('--batch', type=int, default=2, help=batch_help)
    p.add_argument('--crop', type=int, default=crop, help='VOC crop size')
    p.add_argument('--toy-batch', type=int, default=16)
    p.add_argument('--pool', type=int, default=2,
                   help='distinct batches cycled over')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads (default: torch\'s, e.g. OMP_NUM_THREADS)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default='cpu',
                   help='cpu, or cuda[:N]: the models and batches there, the '
                   'steps timed after torch.cuda.synchronize(), the peak memory '
                   'from torch.cuda.max_memory_allocated()')
    return p


def start(args, name):
    """Threads, registries and a quiet logger for benchmark ``name``; returns the
    start time, the batch RNG and the number of torch threads."""
    from mmengine.logging import MessageHub, MMLogger

    from mmwsss.utils import register_all_modules
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f'--device {args.device}: torch sees no CUDA device')
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules(init_default_scope=True)
    MMLogger.get_instance(name, log_level='WARNING')
    MessageHub.get_instance(name)
    return (time.perf_counter(), np.random.default_rng(args.seed),
            torch.get_num_threads())


#: where the models run (``--device``; ``start`` sets it)
DEVICE = torch.device('cpu')


def _sync():
    if DEVICE.type == 'cuda':
        torch.cuda.synchronize(DEVICE)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_shared(cfgs, seed):
    """The models of one setting; all share the first one's backbone module."""
    models = {}
    backbone = None
    for name, cfg in cfgs.items():
        torch.manual_seed(seed)
        model = MODELS.build(cfg)
        model.init_weights()
        model.to(DEVICE)
        if backbone is None:
            backbone = model.backbone
        else:
            model.backbone = backbone
        model.train()
        models[name] = model
    return models


def make_batches(n, batch, size, num_classes, counts, rng, cycle=False):
    """``n`` batches of random uint8 images; image ``2i + 1`` shares a GT class
    with image ``2i`` (EDAM's pairs, as the ClassGroupSampler gives); 1, 2, ...
    classes per image with frequencies ``counts`` (``cycle``: in turn)."""
    p = np.asarray(counts, float) / np.sum(counts)
    batches = []
    for b in range(n):
        inputs, samples = [], []
        shared = None
        for i in range(batch):
            inputs.append(torch.from_numpy(
                rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
            ds = WSSSDataSample(metainfo=dict(
                img_id=f'img_{b:03d}_{i:02d}', img_shape=(size, size),
                ori_shape=(size, size), pad_shape=(size, size),
                scale_factor=(1.0, 1.0)))
            k = (b * batch + i) % len(p) + 1 if cycle else \
                int(rng.choice(len(p), p=p)) + 1
            classes = list(rng.choice(num_classes, size=k, replace=False))
            if i % 2 == 0:
                shared = int(classes[0])
            elif shared not in classes:
                classes[0] = shared
            gt = torch.zeros(num_classes)
            gt[torch.as_tensor(classes, dtype=torch.long)] = 1
            ds.gt_label = gt
            samples.append(ds)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def zero_grads(model):
    for p in model.parameters():
        p.grad = None


def step(model, data):
    """One timed training step: preprocessing, ``loss``, backward."""
    zero_grads(model)
    _sync()
    t0 = time.perf_counter()
    d = model.data_preprocessor(data, True)
    losses = model._run_forward(d, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    _sync()
    dt = time.perf_counter() - t0
    value = float(loss.detach())
    if not np.isfinite(value):
        raise RuntimeError(f'non-finite loss {value}')
    return dt


def _rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * PAGE


class PeakCUDA:
    """Peak CUDA memory allocated while in the block, above what was allocated
    before it (``.delta``)."""

    def __enter__(self):
        _sync()
        torch.cuda.reset_peak_memory_stats(DEVICE)
        self.base = torch.cuda.memory_allocated(DEVICE)
        return self

    def __exit__(self, *exc):
        _sync()
        self.delta = torch.cuda.max_memory_allocated(DEVICE) - self.base
        return False


class PeakRSS:
    """Peak resident memory of the process while in the block, polled."""

    def __init__(self, interval=0.005):
        self.interval = interval
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self.peak = _rss()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def delta(self):
        return self.peak - self.base


def flop_mapping():
    """FLOP formulas for the CPU attention kernels that
    ``torch.utils.flop_counter`` does not list (the flash kernel without dropout:
    the toy's ``attn_drop=0``); with dropout, attention runs as matrix products,
    which it counts."""
    from torch.utils import flop_counter as fc
    aten = torch.ops.aten
    mapping = {}
    def fwd(q, k, v, *args, out_shape=None, **kwargs):
        return fc.sdpa_flop_count(q, k, v)

    def bwd(grad_out, q, k, v, *args, out_shape=None, **kwargs):
        return fc.sdpa_backward_flop_count(grad_out, q, k, v)

    def baddbmm_(self_shape, a, b, *args, out_shape=None, **kwargs):
        return fc.bmm_flop(a, b)

    # the in-place baddbmm_ (the blocked attention's backward) is not listed
    for op, f in (('_scaled_dot_product_flash_attention_for_cpu', fwd),
                  ('_scaled_dot_product_flash_attention_for_cpu_backward',
                   bwd), ('baddbmm_', baddbmm_)):
        if hasattr(aten, op):
            mapping[getattr(aten, op)] = f
    return mapping


class SavedTensors:
    """Context manager: the bytes of the tensors autograd saves for the backward
    pass inside it, each storage once, without ``model``'s parameters (a
    convolution saves its weight): ``.nbytes`` after the block."""

    def __init__(self, model):
        self.params = {p.untyped_storage().data_ptr()
                       for p in model.parameters()}
        self.seen = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, lambda t: t)

    def _pack(self, t):
        try:
            st = t.untyped_storage()
        except Exception:  # noqa: BLE001  (e.g. a tensor without storage)
            return t
        if st.data_ptr() not in self.params:
            self.seen[st.data_ptr()] = st.nbytes()
        return t

    @property
    def nbytes(self):
        return sum(self.seen.values())

    def __enter__(self):
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


def measure(model, data):
    """Saved-for-backward bytes (parameters left out), peak RSS increase and
    FLOPs of one step (untimed)."""
    zero_grads(model)
    counter = FlopCounterMode(display=False, custom_mapping=flop_mapping())
    peak = PeakCUDA() if DEVICE.type == 'cuda' else PeakRSS()
    with peak as rss, counter, SavedTensors(model) as saved:
        d = model.data_preprocessor(data, True)
        losses = model._run_forward(d, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        del loss, losses, d
    zero_grads(model)
    return dict(saved=saved.nbytes, rss=rss.delta,
                flops=counter.get_total_flops())


def bench(models, batches, rounds):
    """Rotated rounds of one step per variant: per variant the median time and
    the median within-round ratio to the first variant."""
    names = list(models)
    times = {n: [] for n in names}
    paired = {n: [] for n in names}
    cursor = {n: 1 for n in names}  # batch 0 was the measured step's
    for r in range(rounds):
        k = r % len(names)
        order = names[k:] + names[:k]
        round_t = {}
        for n in order:
            round_t[n] = step(models[n], batches[cursor[n] % len(batches)])
            cursor[n] += 1
        for n in names:
            times[n].append(round_t[n])
            paired[n].append(round_t[n] / round_t[names[0]])
        print(f'    round {r + 1}/{rounds}: ' + ', '.join(
            f'{n} {round_t[n]:.2f} s' for n in names), flush=True)
    return {n: dict(median=float(np.median(times[n])),
                    paired=float(np.median(paired[n])), n=len(times[n]),
                    times=times[n])
            for n in names}


def run_setting(key, label, cfgs, batches, rounds, seed, out, prefix=''):
    """Measure (memory, FLOPs) and time the variants ``cfgs`` of one setting;
    print a table (ratios to the ``'cam'`` variant) and add the figures to
    ``out`` as ``<prefix><variant>_<figure>``."""
    seed_all(seed)
    models = build_shared(cfgs, seed)
    mem = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        mem[name] = measure(model, batches[0])
        print(f'    [{key}] {name}: measured step {time.perf_counter() - t0:.1f} '
              's', flush=True)
    res = bench(models, batches, rounds)
    base = res['cam']['median']
    mem_label = 'peak CUDA' if DEVICE.type == 'cuda' else 'peak RSS'
    print(label + (f' [{DEVICE}: {torch.cuda.get_device_name(DEVICE)}]'
                   if DEVICE.type == 'cuda' else ''))
    for name in models:
        r, m = res[name], mem[name]
        print(f'    {name:15s} {r["median"] * 1e3:10.1f} ms/step (median of '
              f'{r["n"]}); x cam: {r["median"] / base:6.3f} (paired '
              f'{r["paired"]:6.3f}); {m["flops"] / 1e9:8.1f} GFLOP (x cam '
              f'{m["flops"] / mem["cam"]["flops"]:5.3f}); saved for backward '
              f'{m["saved"] / MB:8.1f} MB (x cam '
              f'{m["saved"] / mem["cam"]["saved"]:6.2f}); {mem_label} +'
              f'{m["rss"] / MB:7.0f} MB', flush=True)
    p = prefix
    for name in models:
        r, m = res[name], mem[name]
        out[f'{p}{name}_ms'] = round(r['median'] * 1e3, 1)
        out[f'{p}{name}_gflop'] = round(m['flops'] / 1e9, 2)
        out[f'{p}{name}_saved_mb'] = round(m['saved'] / MB, 1)
        mem_key = 'peak_cuda_mb' if DEVICE.type == 'cuda' else 'peak_rss_mb'
        out[f'{p}{name}_{mem_key}'] = round(m['rss'] / MB, 0)
        if name != 'cam':
            out[f'{p}{name}_ratio'] = round(r['median'] / base, 4)
            out[f'{p}{name}_ratio_paired'] = round(r['paired'], 4)
            out[f'{p}{name}_flop_ratio'] = round(
                m['flops'] / mem['cam']['flops'], 4)
            out[f'{p}{name}_mem_ratio'] = round(
                m['saved'] / mem['cam']['saved'], 3)
    del models
    return res, mem


def finish(out, args, t_start, threads, goals):
    """Print the goal lines (``(variant, bound)``: the VOC ratio of each variant
    to ``cam`` against its bound), the total time and the one line of JSON."""
    total = time.perf_counter() - t_start
    if 'voc' in args.settings:
        for name, bound in goals:
            print(f'goal: VOC {name}_ratio <= {bound} -> '
                  f'{out[name + "_ratio"]:.3f} (paired '
                  f'{out[name + "_ratio_paired"]:.3f}, FLOPs '
                  f'{out[name + "_flop_ratio"]:.3f})')
    print(f'total {total:.1f} s')
    out.update(settings=args.settings, rounds=args.rounds,
               toy_rounds=args.toy_rounds, batch=args.batch, crop=args.crop,
               toy_batch=args.toy_batch, threads=threads, seed=args.seed,
               device=str(DEVICE),
               total_s=round(total, 1))
    print(json.dumps(out))
