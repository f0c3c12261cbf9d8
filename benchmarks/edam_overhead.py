"""Benchmark: cost of an EDAM training step against a plain CAM step (time, memory,
FLOPs).

    python benchmarks/edam_overhead.py [--settings voc toy] [--rounds 2]
        [--toy-rounds 12] [--batch 2] [--crop 368] [--toy-batch 16]
        [--threads N] [--pool 2] [--seed 0] [--device cpu|cuda]

    # the GPU measurement of the goal (one short run):
    python benchmarks/edam_overhead.py --device cuda --settings voc --rounds 20

EDAM (Wu et al., "Embedded Discriminative Attention Mechanism for Weakly Supervised
Semantic Segmentation", CVPR 2021; docs/methods/edam.md) replaces the CAM classifier
of the backbone feature by the discriminative activation (DA) layer (K + 1 masks,
Eq. 1), a 1x1 reduction to d channels and the collaborative multi-attention (CMA):
one Transformer block per class over the tokens of a pair of images (Eqs. 2-4).
The backbone is unchanged, so the whole overhead is the head's. All figures are
measured in one run (CPU, ``torch`` threads as set by ``--threads`` or
``OMP_NUM_THREADS``):

(a) ``voc``: the VOC classifier of ``configs/_base_/models/edam_resnet38d.py``
    (ResNet-38d, output stride 8, 4096 channels, random weights, frozen as
    configured: BN in eval mode with frozen affine parameters, ``conv1a`` and
    ``b2*`` frozen) with three heads on the same backbone: ``cam`` = the plain
    PSA / SEAM-style ResNet-38 CAM head (``CAMHead(in_channels=4096,
    num_classes=20)``: one 1x1 convolution, no extra convolutions); ``edam`` =
    the config's ``EDAMHead`` (d 128, 2 heads, FFN 512, dropout 0.1, also on the
    attention probabilities, group size 2); ``edam_da`` = the same head with
    ``cma_cfg.num_layers=0`` (the "DA only" ablation: no Transformer, so
    ``edam - edam_da`` is the CMA's share). Batch ``--batch`` (2 = one pair)
    uint8 images 3 x ``--crop``^2 (368, the paper's crop: 46 x 46 features,
    2 x 2116 = 4232 tokens per pair and class), 1 and 2 GT classes per image in
    turn (VOC's 1.5), the two images of a pair sharing a class.
(b) ``toy``: ``configs/toy/cam_r18_toy.py`` (dilated ResNet-18, 16 base channels,
    CAM head with one extra 3x3 convolution) against ``configs/toy/edam_r18_toy.py``
    (the same backbone, ``EDAMHead`` d 32, FFN 128, dropout 0.1,
    ``attn_drop=0.0``) and ``edam_attn_drop`` (the toy head with ``attn_drop=0.1``,
    the official setting: what the toy config's 0 saves), batch ``--toy-batch``
    (16 = 8 pairs) x 3 x 128 x 128, 1 / 2 / 3 GT classes with the toy train
    split's frequencies (180 / 131 / 89 of 400 images), pairs sharing a class.

One step = ``WSClassifier.loss`` through the data preprocessor, ``parse_losses``
and ``backward`` (forward + backward; no optimizer: the variants of a setting
share one backbone module, so its parameters and gradients are held once; the
gradients are set to ``None`` before each step, outside the timing). Each
variant's first step is untimed and measures the memory and the FLOPs (it is also
the warm-up); then ``--rounds`` (voc) / ``--toy-rounds`` (toy) rounds are timed,
every round running each variant once in an order rotated by one every round.
Reported per variant: the median step time, ``*_ratio`` = ratio of medians to
``cam`` (the goal for the VOC ``edam`` is <= 1.5), ``*_ratio_paired`` = the median
of the within-round ratios (robust to drifts of a shared machine's load).

Memory of one step: ``*_saved_mb``, the bytes of the activations autograd saves for
the backward pass (``torch.autograd.graph.saved_tensors_hooks``, each storage
counted once, parameters left out; the same on a GPU except for the attention:
with dropout on the attention probabilities a CPU runs
``scaled_dot_product_attention`` as explicit matrix products and saves the
(B h w)^2 attention weights of every class and head, where the fused kernels
save only their output and log-sum-exp), and
``*_peak_rss_mb``, the peak of the process's resident memory during the step
minus the resident memory before it (polled every 5 ms from ``/proc/self/statm``;
CPU only, approximate: the allocator may reuse memory it kept). FLOPs:
``torch.utils.flop_counter.FlopCounterMode`` over the same step (matrix products,
convolutions and attention, forward + backward; element-wise work such as
softmax, dropout and its random numbers is not counted), a noise-free
complement of the times: ``*_flop_ratio``.

Run time of the default run (both settings, ``OMP_NUM_THREADS=2``): 1563 s (26
minutes) on a shared 2-core machine at a load average of about 7 (other jobs had
most of the CPU; the VOC setting took 94 % of it: a ResNet-38d step of 2 images at
368 px was 88 s, an EDAM step 209 s). With the two cores to itself a ResNet-38d
step took 33-60 s, i.e. about 10 minutes for the default run. The EDAM step at
368 px needs about 12 GB of memory on a CPU (peak resident memory, see above).
Quicker: ``--rounds 1`` (VOC: one measured + one timed step per variant),
``--settings toy`` (about 1 minute on idle cores), or a smaller ``--crop`` (the
attention's share then shrinks: its cost grows with the square of the tokens).

The last line printed is one line of JSON with the figures.
"""
import copy
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from mmengine.config import Config  # noqa: E402

import mmwsss  # noqa: E402,F401

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _step_timing import (finish, make_batches, run_setting,  # noqa: E402
                          start, step_parser)

REPO = osp.join(osp.dirname(osp.abspath(__file__)), '..')
TOY = osp.join(REPO, 'configs', 'toy')
VOC_MODEL = osp.join(REPO, 'configs', '_base_', 'models', 'edam_resnet38d.py')
#: GT classes per image on the toy train split: 1, 2, 3 (180 / 131 / 89 of 400)
TOY_CLASS_COUNTS = (180, 131, 89)


# ------------------------------------------------------------------- configs
def voc_cfgs():
    """cam / edam / edam_da on the ResNet-38d of the VOC EDAM config (random
    weights)."""
    base = Config.fromfile(VOC_MODEL).model
    base.backbone.init_cfg = None
    edam = copy.deepcopy(base)
    cam = copy.deepcopy(base)
    cam.head = dict(type='CAMHead', in_channels=4096, num_classes=20)
    da = copy.deepcopy(base)
    da.head.cma_cfg.num_layers = 0
    sdpa = copy.deepcopy(base)
    sdpa.head.cma_cfg.attn_impl = 'sdpa'
    return {'cam': cam, 'edam': edam, 'edam_da': da, 'edam_sdpa': sdpa}


def toy_cfgs():
    cam = Config.fromfile(osp.join(TOY, 'cam_r18_toy.py')).model
    edam = Config.fromfile(osp.join(TOY, 'edam_r18_toy.py')).model
    drop = Config.fromfile(osp.join(TOY, 'edam_r18_toy.py')).model
    drop.head.cma_cfg.attn_drop = 0.1
    drop_sdpa = copy.deepcopy(drop)
    drop_sdpa.head.cma_cfg.attn_impl = 'sdpa'
    return {'cam': cam, 'edam': edam, 'edam_attn_drop': drop,
            'edam_attn_drop_sdpa': drop_sdpa}


def main():
    p = step_parser(__doc__, 368, 'VOC images per step (pairs: even)')
    a = p.parse_args()
    if a.batch % 2 or a.toy_batch % 2:
        p.error('the batch sizes must be even (EDAM pairs)')
    t_start, rng, threads = start(a, 'edam_overhead')
    out = {}
    if 'voc' in a.settings:
        feat = a.crop
        for _ in range(3):  # output stride 8: H -> ceil(H / 2) three times
            feat = -(-feat // 2)
        batches = make_batches(a.pool, a.batch, a.crop, 20, (1, 1), rng,
                               cycle=True)
        res, _ = run_setting(
            'voc',
            f'(a) VOC: ResNet-38d (random weights, frozen as configured) + '
            f'head, batch {a.batch} x 3x{a.crop}x{a.crop} ({feat}x{feat} '
            f'features, {2 * feat * feat} tokens per pair and class), 1 and 2 '
            f'GT classes in turn, torch threads {threads}, 1 measured + '
            f'{a.rounds} rotated rounds',
            voc_cfgs(), batches, a.rounds, a.seed, out)
        out['cma_share_of_edam_step'] = round(
            (res['edam']['median'] - res['edam_da']['median']) /
            res['edam']['median'], 4)
        print(f'    the CMA (edam - edam_da) is '
              f'{out["cma_share_of_edam_step"] * 100:.1f} % of the EDAM step')
    if 'toy' in a.settings:
        batches = make_batches(max(a.pool, 2), a.toy_batch, 128, 8,
                               TOY_CLASS_COUNTS, rng)
        res, _ = run_setting(
            'toy',
            f'(b) toy: dilated ResNet-18 (16 base channels) + head, batch '
            f'{a.toy_batch} x 3x128x128 (16x16 features, 512 tokens per pair '
            f'and class), torch threads {threads}, 1 measured + '
            f'{a.toy_rounds} rotated rounds',
            toy_cfgs(), batches, a.toy_rounds, a.seed, out, prefix='toy_')
        out['toy_attn_drop_share'] = round(
            (res['edam_attn_drop']['median'] - res['edam']['median']) /
            res['edam_attn_drop']['median'], 4)
        print(f'    attention dropout (edam_attn_drop - edam) is '
              f'{out["toy_attn_drop_share"] * 100:.1f} % of the toy step with '
              'attn_drop=0.1')
    finish(out, a, t_start, threads, [('edam', 1.5)])


if __name__ == '__main__':
    main()
