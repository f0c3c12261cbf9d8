# EDAM classifier schedule (Wu et al., CVPR 2021, §4.2; docs/methods/edam.md): SGD,
# momentum 0.9, lr 1e-3, weight decay 2e-4 (the paper; the official code's default
# is 5e-4: optim_wrapper.optimizer.weight_decay=5e-4), a warm-up of 2,000 iterations
# from lr 1e-4 (the code ramps linearly from 0.1 x lr), then poly decay (power 0.9)
# to 0 at 30,000 iterations (the paper; the code's pair list is about 33,000 steps).
# lr multipliers of the official code: the new DA conv, 1x1 reduction and per-class
# classifiers at 10 x; the backbone, the Transformer blocks and the embeddings at
# 1 x, all with weight decay (the Transformer's layer-norm scales and biases too:
# they are plain weights of ClassWiseTransformerLayer). The frozen backbone parts
# (BN, conv1a, b2-b2_2) get no gradient.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=2e-4),
    constructor='LRMultOptimWrapperConstructor',
    paramwise_cfg=dict(
        new_layers=('head.da', 'head.reduce', 'head.cma.classifier'),
        weight_lr_mult=1.0, bias_lr_mult=1.0, bias_decay_mult=1.0,
        new_weight_lr_mult=10.0, new_bias_lr_mult=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2000),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=2000,
         end=30000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=30000, val_interval=30000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a checkpoint holds ResNet-38d (105 M parameters) and the SGD momentum
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000,
                    max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
