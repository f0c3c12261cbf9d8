# EDAM on the toy dataset (Wu et al., "Embedded Discriminative Attention Mechanism for
# Weakly Supervised Semantic Segmentation", CVPR 2021; docs/methods/edam.md): the toy
# CAM classifier's backbone (configs/toy/cam_r18_toy.py: data, optimiser and the same
# number of iterations and images) with the EDAM head: the discriminative activation
# layer (K + 1 L2-normalised masks, Eqs. 1-2) and the collaborative multi-attention
# (one Transformer block per class over the tokens of a pair of images that share a
# class, Eqs. 3-4). The seeds are the DA masks (the CMA is dropped at inference),
# summed over the CAM config's scales x flip and max-normalised.
# Scaled to the toy: d = 32 (the paper's 128 is as wide as the toy backbone's whole
# 128-channel feature), 2 heads, FFN 4 d, dropout 0.1, but no dropout on the attention
# probabilities (attn_drop=0): on a CPU that dropout draws a random number per
# attention weight (2 x 256 tokens squared per pair, class and head) and keeps the
# weights and the mask for the backward pass: 28 % of the toy step and 3.1 x its
# saved activations (docs/benchmarks.md, "EDAM: training-step overhead").
_base_ = './cam_r18_toy.py'
group_size = 2  # images per CMA group (the paper's pair)
model = dict(
    head=dict(
        _delete_=True,
        type='EDAMHead',
        in_channels=128,
        num_classes=8,
        embed_dims=32,
        group_size=group_size,
        cma_cfg=dict(num_heads=2, ffn_channels=128, dropout=0.1,
                     attn_drop=0.0)))
# Pairs that share a class (ClassGroupSampler). One sampler epoch is one pass over the
# 400 train images as anchors = 400 pairs = 50 iterations of 8 pairs; 20 epochs =
# 1,000 iterations of 16 images, the CAM config's 40 epochs x 25 iterations.
batch_size = 16
train_dataloader = dict(
    batch_size=batch_size,
    sampler=dict(
        _delete_=True,
        type='ClassGroupSampler',
        batch_size=batch_size,
        group_size=group_size,
        mode='similar',
        shuffle=True))
# EDAM's new layers (the DA conv, the 1x1 reduction, the classifiers) and the
# Transformer blocks train with the CAM config's AdamW at the same lr; the
# Transformer's layer-norm scales and biases are plain weights (decayed), as in the
# official code (its Transformer parameters are one SGD group with weight decay).
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, by_epoch=True, begin=0, end=20)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=20, val_interval=20)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=5))
# --resume continues exactly (the dropout of the CMA and the main-process
# augmentation draw what the uninterrupted run drew; mmwsss/engine/hooks/reseed_hook.py)
custom_hooks = [dict(type='ReseedHook')]
# method comparison: the seeds are the DA masks tools/export_cams.py exports
method = dict(name='EDAM', seeds='cams')
# tools/make_pseudo_labels.py with this config: EDAM's saliency post-processing
# (Alg. 1, pixel-wise as the official eval.py) on the PSA CRF marginals (3 mean-field
# iterations, bilateral range scaled to the 128-px toy images: 80 px x 128 / 500 =
# 20 px); the paper's alpha 0.25 / beta 0.95; theta 32 of 255 on the toy's saliency
# maps (the GAIN toy config's threshold: 90 % of the background pixels of train
# below it, no object pixel; the paper's 20 is for PoolNet maps).
pseudo_label_rule = dict(
    type='EDAMSaliency',
    theta=32,
    alpha=0.25,
    beta=0.95,
    apply_on='crf',
    crf=dict(preset='psa', bilateral=dict(sxy=20)))
