# DeepLab-LargeFOV (DeepLab-v1, VGG16; Chen et al., ICLR 2015; the segmentation network
# of OAA TPAMI §4.1, which keeps DeepLab's settings): VGG16 with pool4/pool5 3x3
# stride 1, conv5 dilation 2 (OS8), then pool5a (3x3 avg) -> fc6 3x3 dilation 12 -> 1024
# -> ReLU -> dropout 0.5 -> fc7 1x1 1024 -> ReLU -> dropout 0.5 -> fc8 1x1 -> classes.
# ImageNet weights: torchvision's vgg16-397923af.pth under data/pretrained/ (fc6/fc7
# start from scratch; Caffe DeepLab sub-samples VGG's fc6/fc7 instead).
# test_cfg.crf: dense CRF post-processing at test time (None = off; 'deeplab_vgg' =
# DeepLab's VGG CRF: 10 iterations, Gaussian (3, 3), bilateral (121, 5, 4)).
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='MSCEncoderDecoder',
    msc_scales=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DeepLabVGG16',
        variant='largefov',
        out_indices=(4, ),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='data/pretrained/vgg16-397923af.pth')),
    decode_head=dict(
        type='LargeFOVHead',
        in_channels=512,
        channels=1024,
        dilation=12,
        avg_pool=True,
        dropout_ratio=0.5,
        num_classes=21,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole', crf=None))
