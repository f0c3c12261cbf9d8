# VOC12-aug segmentation data with the DeepLab recipe (kazuto1011/deeplab-pytorch
# configs/voc12.yaml, vendored by the official OAA code; rulixiang/deeplab-pytorch
# config/deeplabv2_voc12.yaml for VWL; docs/segmentation.md):
# random scale 0.5-1.5, crop 321, flip; val = VOC12 val with GT at the original size.
# Training labels: GT (SegmentationClassAug) by default; a pseudo-label config sets ONE
# key, train_dataloader.dataset.data_prefix.pseudo_label_path (a folder of <id>.png,
# relative to data_root or absolute), e.g. the output of tools/make_pseudo_labels.py.
_base_ = './voc12_aug.py'
crop_size = (321, 321)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(500, 500),
        ratio_range=(0.5, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
# `tools/test.py CONFIG CKPT --tta`: the papers' multi-scale test (OAA TPAMI §4; the
# papers give no scales: 0.5-1.5 + flip, softmax averaged, docs/segmentation.md),
# followed by one dense CRF in the model config's `tta_model` (CRFSegTTAModel).
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=r, keep_ratio=True)
             for r in img_ratios],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackWSSSInputs')],
        ])
]
train_dataloader = dict(
    batch_size=10,
    num_workers=4,
    dataset=dict(
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassAug',
            pseudo_label_path=None),
        pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
