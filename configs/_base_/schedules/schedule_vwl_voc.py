# VWL classifier schedule (Ru et al., IJCV 2023, §4.1; docs/methods/vwl.md): SGD, lr
# 0.01 for the backbone and 10 x (0.1) for the new layers -- the head: the image
# classifier, the word classifier, the word-to-image classifier and the learned
# codebook (VWL-L; VWL-M's memory bank is a buffer, not optimised) -- weight decay
# 1e-4 on every group, the codebook and the BN scales / shifts included (official
# code), poly decay (power 0.9) to 0 by iteration, 6 epochs of VOC12-aug train_aug
# at a global batch of 16: 6 x floor(10,582 / 16) = 6 x 661 = 3,966 iterations.
# Momentum: the paper's 0.9. The official code (IRNet's PolyOptimizer, which passes
# the weight decay positionally as SGD's momentum) effectively runs momentum 1e-4;
# to train as the code does:
#   --cfg-options optim_wrapper.optimizer.momentum=1e-4
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    constructor='LRMultOptimWrapperConstructor',
    paramwise_cfg=dict(
        new_layers=('head', ),
        weight_lr_mult=1.0, bias_lr_mult=1.0, bias_decay_mult=1.0,
        new_weight_lr_mult=10.0, new_bias_lr_mult=10.0))
max_iters = 3966
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters),
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a checkpoint per epoch (661 iterations) and the last one; each holds
    # ResNet-101 (43 M parameters) and the SGD momentum
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=661,
                    max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
