# DeepLab-v2 (ResNet-101 + ASPP, MSC; OAA TPAMI Tab. 12, VWL IJCV §4.1, kazuto1011/
# deeplab-pytorch): caffe-style ResNet-101, OS8 (layer3 dilation 2, layer4 dilation 4),
# frozen BN; ASPP = four 3x3 classifiers with dilations 6/12/18/24, summed; multi-scale
# inputs (1, 0.75, 0.5) max-fused, with a loss on every scale and on the fused map.
# ImageNet weights: the DeepLab ResNet-101 converted with
#   python tools/model_converters/deeplab_resnet_to_mmwsss.py IN.pth \
#       data/pretrained/deeplab_resnet101_imagenet_mmwsss.pth --backbone-only
# test_cfg.crf: 'deeplab_resnet' (10 iterations, Gaussian (1, 3), bilateral (67, 3, 4)).
# Caffe-converted DeepLab weights expect BGR input with the mean subtracted (no std).
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[104.008, 116.669, 122.675],
    std=[1.0, 1.0, 1.0],
    bgr_to_rgb=False,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='MSCEncoderDecoder',
    msc_scales=(1.0, 0.75, 0.5),
    msc_loss='all',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DeepLabResNet',
        depth=101,
        out_indices=(3, ),
        stem_pool_ceil_mode=True,  # as Caffe / kazuto1011 for every input size
        init_cfg=dict(
            type='Pretrained',
            checkpoint='data/pretrained/deeplab_resnet101_imagenet_mmwsss.pth')),
    decode_head=dict(
        type='DeepLabV2Head',
        in_channels=2048,
        dilations=(6, 12, 18, 24),
        num_classes=21,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole', crf=None))
