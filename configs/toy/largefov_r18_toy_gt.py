# DeepLab-LargeFOV on the toy dataset, trained on the GT masks (the upper bound of the
# pseudo-label run): the toy's small dilated ResNet-18 (BN, OS8) + the LargeFOV head
# (pool5a, fc6 3x3 dilation 4 -- 12 on VOC's 41x41 maps, 4 on the toy's 16x16 --,
# fc7, dropout 0.5, fc8), AdamW, 2000 iterations (about 3 min on 2 CPU cores).
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
        dilation=4,
        avg_pool=True,
        dropout_ratio=0.5,
        num_classes=9,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)),
    test_cfg=dict(mode='whole', crf=None))
