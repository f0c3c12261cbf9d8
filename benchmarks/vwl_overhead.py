"""Benchmark: cost of a VWL training step against a plain CAM step on the same
backbone (time, memory, FLOPs).

    python benchmarks/vwl_overhead.py [--settings voc toy] [--rounds 2]
        [--toy-rounds 12] [--batch 2] [--crop 512] [--toy-batch 16]
        [--threads N] [--pool 2] [--seed 0] [--device cpu|cuda]

VWL (Ru et al., "Weakly supervised semantic segmentation by visual words learning
and hybrid pooling", IJCV 2023; docs/methods/vwl.md) keeps the CAM classifier and
adds, in training only, hybrid pooling of the features for the image labels
(Eqs. 8-10), the cosine similarity of every pixel to a K-word codebook with the word
labels and a word classifier on GAP(F) (Eqs. 2-4), and either the word-to-image
classifier and the decorrelation loss of a learned codebook (VWL-L, Eqs. 5, 13-15)
or the update of a memory-bank codebook (VWL-M, Eqs. 6-7). The goal: a VWL step
<= 1.2 x a CAM step. Every variant of a setting shares one backbone module (the
backbone is the same by construction); all figures are measured in one run
(CPU, ``torch`` threads as set by ``--threads`` or ``OMP_NUM_THREADS``):

(a) ``voc``: the backbone of ``configs/vwl/vwl_l_r101_voc.py`` (MMSeg ResNet-101,
    output stride 16, 2048 channels, random weights, BN statistics frozen, the
    stem and layer1-2 frozen as VWL-L's: their backward is not computed) with
    ``cam`` = ``CAMHead(in_channels=2048, num_classes=20)`` (a 1x1 convolution,
    GAP), ``hp`` = the same with hybrid pooling (VWL's "HP only"), ``vwl_l`` =
    the config's ``VWLHead`` (K = 256 learned words), ``vwl_m`` = the
    ``vwl_m_r101_voc.py`` head (memory bank, rho 1e-3). VWL-M's own config
    trains layer1-2 as well (a heavier step for the CAM baseline too); the
    heads are compared here on one backbone. Batch ``--batch`` uint8 images 3 x
    ``--crop``^2 (512, the official crop: 32 x 32 features), 1 and 2 GT
    classes in turn.
(b) ``toy``: ``configs/toy/cam_r18_toy.py`` against ``vwl_l_r18_toy.py`` and
    ``vwl_m_r18_toy.py`` (the same dilated ResNet-18 and extra 3x3 convolution,
    K = 64 words), batch ``--toy-batch`` x 3 x 128 x 128, the toy train split's
    class counts.

One step = ``WSClassifier.loss`` through the data preprocessor, ``parse_losses`` and
``backward`` (no optimizer; gradients set to None outside the timing). Each
variant's first step is untimed and measures the saved activations
(``*_saved_mb``), the peak resident memory (``*_peak_rss_mb``) and the FLOPs
(``*_flop_ratio``); then ``--rounds`` rotated rounds time every variant once
(``*_ratio``: ratio of medians to ``cam``; ``*_ratio_paired``: median of the
within-round ratios). The last line printed is one line of JSON with the figures.
Run time with the defaults: about half a minute on 2 idle cores (a ResNet-101 step
of 2 images at 512 px with VWL-L's frozen stages is about 1.6 s there); the
recorded run (docs/benchmarks.md) used ``--rounds 10 --toy-rounds 20``.
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
VWL = osp.join(REPO, 'configs', 'vwl')
#: GT classes per image on the toy train split: 1, 2, 3 (180 / 131 / 89 of 400)
TOY_CLASS_COUNTS = (180, 131, 89)


def voc_cfgs():
    """cam / hp / vwl_l / vwl_m on the backbone of the VWL-L VOC config."""
    vwl_l = Config.fromfile(osp.join(VWL, 'vwl_l_r101_voc.py')).model
    vwl_l.backbone.init_cfg = None
    vwl_m = copy.deepcopy(vwl_l)
    vwl_m.head = Config.fromfile(osp.join(VWL, 'vwl_m_r101_voc.py')).model.head
    cam = copy.deepcopy(vwl_l)
    cam.head = dict(type='CAMHead', in_channels=2048, num_classes=20)
    hp = copy.deepcopy(cam)
    hp.head.pooling = dict(type='HybridPooling')
    return {'cam': cam, 'hp': hp, 'vwl_l': vwl_l, 'vwl_m': vwl_m}


def toy_cfgs():
    return {
        name: Config.fromfile(osp.join(TOY, f'{cfg}_r18_toy.py')).model
        for name, cfg in (('cam', 'cam'), ('vwl_l', 'vwl_l'), ('vwl_m', 'vwl_m'))
    }


def main():
    a = step_parser(__doc__, 512).parse_args()
    t_start, rng, threads = start(a, 'vwl_overhead')
    out = {}
    if 'voc' in a.settings:
        feat = -(-a.crop // 16)
        batches = make_batches(a.pool, a.batch, a.crop, 20, (1, 1), rng,
                               cycle=True)
        run_setting(
            'voc',
            f'(a) VOC: ResNet-101 OS16 (random weights, frozen as VWL-L) + '
            f'head, batch {a.batch} x 3x{a.crop}x{a.crop} ({feat}x{feat} '
            f'features), 1 and 2 GT classes in turn, torch threads {threads}, '
            f'1 measured + {a.rounds} rotated rounds',
            voc_cfgs(), batches, a.rounds, a.seed, out)
    if 'toy' in a.settings:
        batches = make_batches(max(a.pool, 2), a.toy_batch, 128, 8,
                               TOY_CLASS_COUNTS, rng)
        run_setting(
            'toy',
            f'(b) toy: dilated ResNet-18 (16 base channels) + head, batch '
            f'{a.toy_batch} x 3x128x128, torch threads {threads}, 1 measured '
            f'+ {a.toy_rounds} rotated rounds',
            toy_cfgs(), batches, a.toy_rounds, a.seed, out, prefix='toy_')
    finish(out, a, t_start, threads, [('vwl_l', 1.2), ('vwl_m', 1.2)])


if __name__ == '__main__':
    main()
