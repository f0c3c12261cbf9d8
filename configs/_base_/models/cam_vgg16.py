# OAA/DeepLab-style VGG16 classifier producing CAMs (OAA TPAMI §3.1; layers from the
# official code, PengtaoJiang/OAA-PyTorch models/vgg.py; docs/methods/oaa.md):
# VGG16 (pool4 3x3/1, conv5 dilation 2, no pool5, OS8) + 3 extra 3x3/512 convs + 1x1 class
# conv + GAP, multi-label soft-margin loss. ImageNet weights: the torchvision VGG16 file
# (vgg16-397923af.pth), put under data/pretrained/ (no download at run time).
# WSSSDataPreProcessor = MMSeg's SegDataPreProcessor + batch_input_shape + batch augments
# (OAA++'s attention drop)
data_preprocessor = dict(
    type='WSSSDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    # a batch is padded to its largest image only: with the recipe's batch of 1
    # nothing is padded (as the official code); MMSeg needs `size` or `size_divisor`
    size_divisor=1)
model = dict(
    type='WSClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DeepLabVGG16',
        variant='oaa',
        out_indices=(4, ),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='data/pretrained/vgg16-397923af.pth')),
    head=dict(
        type='CAMHead',
        in_channels=512,
        num_classes=20,
        num_extra_convs=3,
        extra_channels=512,
        init_std=0.01),
    # CAM inference: scales x flip, sum fusion, restricted to GT classes
    test_cfg=dict(
        scales=(1.0, 0.5, 1.5, 2.0), flip=True, fusion='sum', restrict='gt'))
