"""Diagnostics of a trained GAIN toy classifier: what its attention losses see.

    python benchmarks/gain_toy_diagnostics.py CONFIG CHECKPOINT [CHECKPOINT ...]
        [--images 64] [--data-root data/toy]

For each checkpoint (``init``: the config's random initialisation) of a
``GAINHead`` classifier (``configs/toy/gain_r18_toy.py``,
``configs/toy/gain_ext-p_r18_toy.py``), on the first ``--images`` train images
(no augmentation; batches of 16, the first 2 of each from the pixel subset
``ImageSets/GAIN/pixel_10pct.txt`` when the config has one, as the
StrongMixSampler gives):

* **mining stream**: the sigmoid score of the GT classes on the unerased images
  (train-mode and eval-mode batch norm) and on the erased images ``I*c`` (eval
  mode, the head's ``mining_bn``: the ``s^c`` of L_am; and train mode), and the
  mean soft mask ``T`` (the share of the image that is erased);
* **gradients**: the norm of the gradient of ``loss_cls``, ``loss_am`` and
  ``loss_ext_pixel`` (as weighted in the head, warm-ups off) on the backbone
  parameters, over the same batches (summed), and the range ``max - min`` of the
  raw attention ``A^c`` of the GT classes (median; the normalisation of Eq. 4
  divides the gradients of the attention losses by it);
* **scale**: ``max ReLU(W_c f)`` and the image logit, median over the GT classes and
  over the other classes.

The last line printed is one line of JSON (one entry per checkpoint).
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402

import mmwsss  # noqa: E402,F401
from mmwsss.models.utils import erase_inputs, soft_mask  # noqa: E402
from mmwsss.registry import DATASETS, MODELS  # noqa: E402
from mmwsss.utils import register_all_modules  # noqa: E402

BATCH, STRONG = 16, 2


def batches(cfg, n_images, data_root):
    ds_cfg = cfg.train_dataloader.dataset.copy()
    ds_cfg.data_root = data_root
    ds_cfg.pipeline = [dict(type='LoadImageFromFile')] + (
        [dict(type='LoadExtraSupervision')] if 'strong_subsets' in ds_cfg else
        []) + [dict(type='PackWSSSInputs')]
    ds = DATASETS.build(ds_cfg)
    flags = [bool(ds.get_data_info(i).get('strong_pixel')) for i in range(len(ds))]
    strong = [i for i, f in enumerate(flags) if f]
    weak = [i for i, f in enumerate(flags) if not f]
    out = []
    for b in range(max(1, n_images // BATCH)):
        ids = (strong[b * STRONG:(b + 1) * STRONG] if strong else []) + \
            weak[b * BATCH:(b + 1) * BATCH]
        ids = ids[:BATCH]
        items = [ds[i] for i in ids]
        out.append(dict(inputs=[d['inputs'] for d in items],
                        data_samples=[d['data_samples'] for d in items]))
    return out


def median(values):
    return float(np.median(torch.cat(values).numpy())) if values else None


def diagnose(cfg, ckpt, data):
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if ckpt == 'init':
        model.init_weights()
    else:
        load_checkpoint(model, ckpt, map_location='cpu', logger='silent')
    head = model.head
    head.am_start_iter = head.ext_start_iter = 0
    inner = head.cls_head
    params = [p for n, p in model.named_parameters() if n.startswith('backbone.')]
    grads = {}
    rec = {k: [] for k in ('train_bn', 'eval_bn', 'erased_eval_bn',
                           'erased_train_bn', 'mask', 'range', 'peak_gt',
                           'peak_other', 'logit_gt', 'logit_other')}
    for batch in data:
        model.train()
        d = model.data_preprocessor(batch, True)
        x, samples = d['inputs'], d['data_samples']
        losses = model.loss(x, samples)
        for k in ('loss_cls', 'loss_am', 'loss_ext_pixel'):
            if k not in losses:
                continue
            g = torch.autograd.grad(losses[k], params, retain_graph=True,
                                    allow_unused=True)
            grads.setdefault(k, [0.0])[0] += float(sum(
                (t ** 2).sum() for t in g if t is not None))
        with torch.no_grad():
            labels = torch.stack([s.gt_label for s in samples]) > 0
            feats = model.extract_feat(x)
            f = inner.pre_logits(feats)
            logits = inner.image_logits(inner.outputs_from_pre_logits(f))
            rec['train_bn'].append(torch.sigmoid(logits)[labels])
            rec['eval_bn'].append(torch.sigmoid(head._mining_logits(
                x, model.extract_feat_stream))[labels])
            images, classes = torch.nonzero(labels, as_tuple=True)
            att = head.pair_attention(f, logits, images, classes,
                                      create_graph=False)
            shapes = [tuple(s.metainfo['img_shape']) for s in samples]
            norm, valid = head.normalized_attention(att, images, x.shape[-2:],
                                                    shapes)
            masks = soft_mask(norm, head.sigma, head.omega)
            erased = erase_inputs(x[images], list(masks),
                                  [shapes[b] for b in images.tolist()],
                                  fill_value=0.)
            rows = torch.arange(len(classes))
            saved = head.mining_bn
            for mode in ('eval', 'train'):
                head.mining_bn = mode
                s = torch.sigmoid(head._mining_logits(
                    erased, model.extract_feat_stream))[rows, classes]
                rec[f'erased_{mode}_bn'].append(s)
            head.mining_bn = saved
            rec['mask'].append(masks.flatten(1).mean(1))
            rec['range'].append((att.flatten(1).amax(1) -
                                 att.flatten(1).amin(1)))
            conv = inner.linear_classifier()
            if conv is not None:
                cam = torch.einsum('kc,nchw->nkhw', conv.weight[:, :, 0, 0],
                                   f).relu().amax((-2, -1))
                rec['peak_gt'].append(cam[labels])
                rec['peak_other'].append(cam[~labels])
            rec['logit_gt'].append(logits[labels])
            rec['logit_other'].append(logits[~labels])
    out = {k: median(v) for k, v in rec.items()}
    for k in ('train_bn', 'eval_bn', 'erased_eval_bn', 'erased_train_bn', 'mask'):
        out[f'{k}_mean'] = float(torch.cat(rec[k]).mean())
    out.update({f'grad_{k}': float(np.sqrt(v[0])) for k, v in grads.items()})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoints', nargs='+', help="files, or 'init'")
    p.add_argument('--images', type=int, default=64)
    p.add_argument('--data-root', default='data/toy')
    a = p.parse_args()
    register_all_modules(init_default_scope=True)
    MMLogger.get_instance('gain_toy_diagnostics', log_level='WARNING')
    cfg = Config.fromfile(a.config)
    data = batches(cfg, a.images, a.data_root)
    n = sum(len(b['inputs']) for b in data)
    results = {}
    for ckpt in a.checkpoints:
        r = diagnose(cfg, ckpt, data)
        results[ckpt] = r
        print(f'{ckpt} ({n} train images)')
        print(f"  GT-class sigmoid score, mean / median: unerased train-BN "
              f"{r['train_bn_mean']:.4f} / {r['train_bn']:.4f}, eval-BN "
              f"{r['eval_bn_mean']:.4f} / {r['eval_bn']:.4f}; erased (L_am's "
              f"s^c) eval-BN {r['erased_eval_bn_mean']:.4f} / "
              f"{r['erased_eval_bn']:.4f}, train-BN "
              f"{r['erased_train_bn_mean']:.4f} / {r['erased_train_bn']:.4f}; "
              f"mask mean {r['mask_mean']:.4f}")
        print('  |grad| on the backbone: ' + ', '.join(
            f"{k[5:]} {v:.3e}" for k, v in r.items() if k.startswith('grad_'))
            + f"; raw attention range (median) {r['range']:.3e}")
        peaks = '' if r['peak_gt'] is None else (
            f"max ReLU(W_c f) GT {r['peak_gt']:.3g}, other "
            f"{r['peak_other']:.3g}; ")
        print(f"  medians: {peaks}logit GT {r['logit_gt']:.3g}, other "
              f"{r['logit_other']:.3g}")
    print(json.dumps(dict(config=a.config, images=n, results=results)))


if __name__ == '__main__':
    main()
