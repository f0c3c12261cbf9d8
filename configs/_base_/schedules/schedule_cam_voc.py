# OAA classifier recipe (OAA TPAMI §4.1; batch, epochs and lr multipliers from the
# official code, PengtaoJiang/OAA-PyTorch train.sh, scripts/train.py): SGD m0.9, lr 1e-3,
# weight decay 2e-4 (paper; the official code runs with 5e-4: set
# optim_wrapper.optimizer.weight_decay=5e-4), lr multipliers backbone w x1 / b x2, new
# layers w x10 / b x20, batch 1 x 5 accumulated steps, 15 epochs, lr / 10 at epoch 10.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=2e-4),
    accumulative_counts=5,
    constructor='LRMultOptimWrapperConstructor',
    paramwise_cfg=dict(
        new_layers=('head', ),
        weight_lr_mult=1.0,
        bias_lr_mult=2.0,
        new_weight_lr_mult=10.0,
        new_bias_lr_mult=20.0))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[10], gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=15, val_interval=15)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1,
                    max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
