# A short CPU schedule for the toy dataset (about 2-3 minutes on 2 cores for the
# small segmentor). AdamW: SGD from scratch needs about twice the iterations here
# (docs/benchmarks.md).
optimizer = dict(type='AdamW', lr=2e-3, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=2000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
