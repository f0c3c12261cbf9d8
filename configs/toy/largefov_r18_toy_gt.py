# DeepLab-LargeFOV on the toy dataset, trained on the GT masks (the upper bound of the
# pseudo-label run): the toy's small dilated ResNet-18 (BN, OS8) + the LargeFOV head
# (fc6 3x3 dilated -> 256, fc7 1x1 256, fc8), AdamW, 2000 iterations (about 2.5 min on
# 2 idle CPU cores). Scaled to the toy's 16x16 feature maps: dilation 2 (12 on VOC's
# 41x41), no pool5a, dropout 0.1 (0.5 on VOC). Val mIoU with the VOC settings (d12-like
# d4 + pool5a + dropout 0.5): 37.9; dropout 0.1: 60.3; this config: 70.6
# (docs/benchmarks.md).
#   python tools/train.py configs/toy/largefov_r18_toy_gt.py
#   python tools/test.py configs/toy/largefov_r18_toy_gt.py work_dirs/largefov_r18_toy_gt/iter_2000.pth \
#       [--cfg-options model.test_cfg.crf=deeplab_vgg]
_base_ = './supervised_toy.py'
model = dict(
    type='MSCEncoderDecoder',
    msc_scales=None,
    decode_head=dict(
        _delete_=True,
        type='LargeFOVHead',
        in_channels=128,
        in_index=3,
        channels=256,
        dilation=2,
        avg_pool=False,
        dropout_ratio=0.1,
        num_classes=9,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)),
    test_cfg=dict(mode='whole', crf=None))
# `tools/test.py CONFIG CKPT --tta`: multi-scale + flip, softmax averaged, then one dense
# CRF: the 'deeplab_vgg' test CRF with its bilateral range scaled to the toy's 128-px
# images (121 px x 128 / 500 = 31 px; the VOC kernel spans the whole toy image).
# `--cfg-options model.test_cfg.crf=deeplab_vgg` applies the unscaled CRF to single-scale
# predictions instead.
toy_crf = dict(preset='deeplab_vgg', bilateral=dict(sxy=31))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=r, keep_ratio=True)
             for r in (0.75, 1.0, 1.25)],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackWSSSInputs')],
        ])
]
tta_model = dict(type='CRFSegTTAModel', crf=toy_crf)
