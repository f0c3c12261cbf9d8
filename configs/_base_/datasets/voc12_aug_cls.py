# VOC12-aug image-level classification data for WSSS classifiers (oaa.md §2.7):
# short side -> 224 (bicubic), ColorJitter(0.3, 0.3, 0.3, 0.1); no crop, no flip in the
# official OAA code (geometric augmentation is allowed by mmwsss, see the OAA configs).
dataset_type = 'VOCWSSSDataset'
data_root = 'data/VOCdevkit/VOC2012'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, 224), keep_ratio=True,
         interpolation='bicubic'),
    dict(type='mmpretrain.ColorJitter', brightness=0.3, contrast=0.3,
         saturation=0.3, hue=0.1),
    dict(type='PackWSSSInputs'),
]
# CAM inference / seed evaluation: original image in, CAMs at original size out
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
cam_pipeline = test_pipeline
train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        label_source='cls_file',
        cls_label_file='cls_labels.npy',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
        pipeline=train_pipeline))
# seeds are evaluated on VOC train (1,464 images), the split WSSS papers report
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        label_source='cls_file',
        cls_label_file='cls_labels.npy',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='MultiLabelMAPMetric'),
    dict(type='SeedIoUMetric'),
]
test_evaluator = val_evaluator
