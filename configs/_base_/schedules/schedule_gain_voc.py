# GAIN classifier schedule (Li et al., CVPR 2018 / TPAMI 2020, §4.1; docs/methods/gain.md).
# The paper: SGD, lr 1e-5, batch 1, 35 epochs over VOC12-aug (about 370k iterations),
# no schedule given (constant). Momentum and weight decay are not given: 0.9 / 5e-4.
# mmwsss deviates in batch and lr: a total batch of 16 (8 per GPU x 2 GPUs) with lr
# 1e-4 (about 23k iterations for the 35 epochs; batch 1 does not use a GPU). No lr
# multipliers (the paper gives none).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-4, momentum=0.9, weight_decay=5e-4))
param_scheduler = []  # constant lr
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=35, val_interval=35)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # a checkpoint holds VGG16 with fc6 / fc7 and the SGD momentum: about 1.1 GB
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1,
                    max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
