# VWL-L ("Ours-L"): visual words learning with a learned codebook + hybrid pooling
# (Ru et al., "Weakly supervised semantic segmentation by visual words learning and
# hybrid pooling", IJCV 2023) on VOC12-aug, image labels only; details, equations and
# the paper's numbers: docs/methods/vwl.md. ResNet-101 (OS16, frozen BN statistics;
# stem + layer1-2 frozen), the VWL head with K = 256 words, 6 epochs at a batch of 16.
# The paper reports (VOC train, 1,464 images) 57.3 mIoU for the CAMs (background
# threshold 0.13 in the official code), 63.0 with the dense CRF (this config's
# pseudo-label rule), 71.4 after IRNet (not in mmwsss).
#   python tools/train.py configs/vwl/vwl_l_r101_voc.py
#   tools/dist_train.sh configs/vwl/vwl_l_r101_voc.py 8 --cfg-options train_dataloader.batch_size=2
# (8 GPUs with 2 images each: the global batch of 16)
#   python tools/export_cams.py configs/vwl/vwl_l_r101_voc.py \
#       work_dirs/vwl_l_r101_voc/iter_3966.pth --out work_dirs/vwl_l_r101_voc/cams
#   python tools/eval_seeds.py work_dirs/vwl_l_r101_voc/cams \
#       configs/vwl/vwl_l_r101_voc.py --split val --thresholds 0.13
# (--split val: the val_dataloader's VOC train, 1,464 images, as the paper reports;
# without --thresholds a sweep of 0.05-0.95, whose best value is not the paper's
# protocol)
#   python tools/make_pseudo_labels.py configs/vwl/vwl_l_r101_voc.py \
#       work_dirs/vwl_l_r101_voc/cams --out data/VOCdevkit/VOC2012/PseudoLabels/vwl_l \
#       --workers 8 --eval
_base_ = [
    '../_base_/models/vwl_r101.py', '../_base_/datasets/voc12_aug_cls.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_vwl_voc.py'
]
# The official pipeline (v2/dataset/voc.py): the long side resized to a random
# 320-640 keeping the ratio (PIL bicubic), flip, a random 512 crop; smaller images are
# padded by the data preprocessor after normalisation with 0 (the official code puts
# them at a random place of the 512 canvas, here at its top left). No colour jitter.
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # long side = 640 x U(0.5, 1): scale (640, 640) with keep_ratio fits the image
    # into 640 r x 640 r, i.e. scales its long side to 640 r
    dict(type='RandomResize', scale=(640, 640), ratio_range=(0.5, 1.0),
         keep_ratio=True, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackWSSSInputs'),
]
# VWL-L: conv1, bn1, layer1 and layer2 frozen (the official code detaches the
# features after layer2, v2/network/resnet_cam.py; MMSeg's frozen_stages=2).
# (size_divisor=None: the base's size_divisor=1 and a size together stop MMSeg's
# stack_batch: 'only one of size and size_divisor should be valid')
model = dict(
    data_preprocessor=dict(size=crop_size, size_divisor=None),
    backbone=dict(frozen_stages=2))
# 16 images per step on one GPU; on N GPUs keep 16 in total: batch_size = 16 // N.
# drop_last as the official loader: 661 steps per epoch.
# A fixed seed (the official code's 1), persistent_workers=False and ReseedHook:
# --resume continues exactly (the sampler's order and the random resize / flip /
# crop continue as drawn; mmwsss/engine/hooks/reseed_hook.py).
randomness = dict(seed=1)
train_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=False,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='ReseedHook')]
# tools/make_pseudo_labels.py with this config: VWL's "+CRF" (the official
# v2/crf.py): softmax over [0.15, CAMs of the image's classes], dense CRF (10
# iterations, Gaussian sxy 1 compat 3, bilateral sxy 64 srgb 3 compat 4), argmax
pseudo_label_rule = dict(
    type='ThresholdBackground',
    threshold=0.15,
    crf=dict(preset='vwl'),
    crf_unary='softmax')
