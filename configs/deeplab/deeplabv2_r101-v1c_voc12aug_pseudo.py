# DeepLab-v2 head on MMSeg's ResNetV1c-101 (deep stem, pytorch style, OpenMMLab's
# ImageNet weights open-mmlab://resnet101_v1c): the same recipe as
# deeplabv2_r101_voc12aug_pseudo.py with the backbone every MMSeg model uses. The
# checkpoint must be available locally (nothing is downloaded at run time): put it
# under data/pretrained/ and point init_cfg.checkpoint at it.
_base_ = './deeplabv2_r101_voc12aug_pseudo.py'
model = dict(
    # OpenMMLab weights: RGB input normalised with the ImageNet mean / std
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=101,
        out_indices=(3, ),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        contract_dilation=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='data/pretrained/resnet101_v1c-e67eebb6.pth')))
