# DeepLab schedule (VWL IJCV §4.1; kazuto1011/deeplab-pytorch configs/voc12.yaml, as in
# the official OAA code; docs/segmentation.md): SGD momentum 0.9, weight decay 5e-4,
# poly lr (power 0.9), 20k iterations, head weights x10 and biases x20 without weight
# decay (backbone biases x2). The base lr is set by the model config.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4),
    constructor='LRMultOptimWrapperConstructor',
    paramwise_cfg=dict(
        new_layers=('decode_head', ),
        weight_lr_mult=1.0,
        bias_lr_mult=2.0,
        new_weight_lr_mult=10.0,
        new_bias_lr_mult=20.0,
        bias_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=20000,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000,
                    max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
