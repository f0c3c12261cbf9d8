# Plain CAM on the toy dataset, trained from scratch on CPU in about 2 minutes
# (40 epochs x 25 iterations; docs/benchmarks.md).
# The backbone is a small dilated ResNet-18 (BN, 16 base channels, OS8) because a VGG16
# without BN does not train from scratch in a CPU budget (docs/benchmarks.md); the head
# is the OAA/CAM head.
#   python tools/train.py configs/toy/cam_r18_toy.py
#   python tools/export_cams.py configs/toy/cam_r18_toy.py \
#       work_dirs/cam_r18_toy/epoch_40.pth --out work_dirs/cam_r18_toy/cams
#   python tools/eval_seeds.py work_dirs/cam_r18_toy/cams configs/toy/cam_r18_toy.py
_base_ = [
    '../_base_/models/cam_vgg16.py', '../_base_/datasets/toy.py',
    '../_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(size=(128, 128), size_divisor=None),
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=18,
        stem_channels=16,
        base_channels=16,
        out_indices=(3, ),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=dict(type='BN', requires_grad=True),
        contract_dilation=True),
    head=dict(
        in_channels=128, num_classes=8, num_extra_convs=1,
        extra_channels=128))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
cam_pipeline = test_pipeline
train_dataloader = dict(
    batch_size=16,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
# seeds are evaluated on the train split (as WSSS papers do on VOC train)
val_dataloader = dict(
    dataset=dict(
        ann_file='ImageSets/Segmentation/train.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [dict(type='MultiLabelMAPMetric'), dict(type='SeedIoUMetric')]
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-3, weight_decay=1e-4),
    constructor='LRMultOptimWrapperConstructor',
    # BN scales not decayed: the setting the toy figures in docs/benchmarks.md were
    # measured with (LRMultOptimWrapperConstructor decays norm weights by default)
    paramwise_cfg=dict(
        new_layers=('head', ), bias_lr_mult=1.0, new_weight_lr_mult=1.0,
        new_bias_lr_mult=1.0, norm_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, by_epoch=True, begin=0, end=40)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=40, val_interval=40)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=10),
    sampler_seed=dict(type='DistSamplerSeedHook'))
log_processor = dict(by_epoch=True)
randomness = dict(seed=0)
# a row of the method comparison (tools/analysis/compare_methods.py): the seeds are the
# CAMs exported from the trained classifier. Configs inheriting from this one set their
# own (`method = None`: not a method); docs/extending.md, section '7. A leaderboard row'
method = dict(name='CAM', seeds='cams')
