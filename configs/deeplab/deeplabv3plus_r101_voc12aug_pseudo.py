# MMSeg's own DeepLabV3+ (R101-D8, 512x512, 20k) trained on pseudo labels: the model and
# schedule come unchanged from MMSeg's config; only the training labels are replaced by
# mmwsss's VOC12-aug dataset pointed at a pseudo-label folder.
#   tools/dist_train.sh configs/deeplab/deeplabv3plus_r101_voc12aug_pseudo.py 4
# Composing with an `mmseg::` config: MMEngine tags every dict of that file with
# `_scope_='mmseg'`, and MMSeg's loops build their dataloaders in that scope, so the
# mmwsss datasets below carry `_scope_='mmwsss'`. MMSeg's `pretrained=
# 'open-mmlab://resnet101_v1c'` would be downloaded: the same ImageNet file is read
# from data/pretrained/ instead (docs/getting_started.md, weights table).
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512.py'
default_scope = 'mmwsss'
# mmwsss's Runner (as configs/_base_/default_runtime.py; MMSeg's runtime has none): the
# num_classes check and the stop at the first NaN / inf loss term, before that
# iteration's checkpoint
runner_type = 'WSSSRunner'
model = dict(
    pretrained=None,
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='data/pretrained/resnet101_v1c-e67eebb6.pth')))
data_root = 'data/VOCdevkit/VOC2012'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        _scope_='mmwsss',
        type='VOCWSSSDataset',
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        label_source='cls_file',
        cls_label_file='cls_labels.npy',
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassAug',
            pseudo_label_path='PseudoLabels/oaa'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        _scope_='mmwsss',
        type='VOCWSSSDataset',
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        label_source='cls_file',
        cls_label_file='cls_labels.npy',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
