# VOC12-aug image-level classification data for WSSS classifiers (the official OAA code,
# PengtaoJiang/OAA-PyTorch utils/LoadData.py; the papers give no data pipeline):
# short side -> 224 (bicubic), ColorJitter(0.3, 0.3, 0.3, 0.1); no crop, no flip in the
# official OAA code (geometric augmentation is allowed by mmwsss, see the OAA configs).
# Seeds are evaluated on VOC train (1,464 images, the split WSSS papers report) through
# val_dataloader; CAMs are computed on original images and compared at original size.
_base_ = './voc12_aug.py'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, 224), keep_ratio=True,
         interpolation='bicubic'),
    dict(type='mmpretrain.ColorJitter', brightness=0.3, contrast=0.3,
         saturation=0.3, hue=0.1),
    dict(type='PackWSSSInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
cam_pipeline = test_pipeline
train_dataloader = dict(
    batch_size=1,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        ann_file='ImageSets/Segmentation/train.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='MultiLabelMAPMetric'),
    dict(type='SeedIoUMetric'),
]
test_evaluator = val_evaluator
