# GAIN: Guided Attention Inference Network (Li, Wu, Peng, Ernst, Fu, "Tell Me Where to
# Look: Guided Attention Inference Network", CVPR 2018; TPAMI 2020) on VOC12-aug, image
# labels only; details, equations and the paper's numbers: docs/methods/gain.md.
# The ImageNet VGG16 classifier (fc6-fc8, Grad-CAM at relu5_3) trained with
# L_self = L_cl + alpha L_am (Eq. 6): the multi-label soft margin loss and the
# attention-mining loss on the images erased by their own soft attention mask.
#   tools/dist_train.sh configs/gain/gain_vgg16_voc.py 2     (8 images per GPU)
#   tools/export_cams.py configs/gain/gain_vgg16_voc.py work_dirs/gain_vgg16_voc/epoch_35.pth \
#       --out work_dirs/gain_vgg16_voc/cams
#   tools/eval_seeds.py work_dirs/gain_vgg16_voc/cams configs/gain/gain_vgg16_voc.py --split val
#   tools/make_pseudo_labels.py configs/gain/gain_vgg16_voc.py work_dirs/gain_vgg16_voc/cams \
#       --out data/VOCdevkit/VOC2012/PseudoLabels/gain \
#       --saliency-dir data/VOCdevkit/VOC2012/SaliencyDSS --eval
# Deviation from the paper (§4.1: batch 1, lr 1e-5): a total batch of 16 = 8 per GPU x
# 2 GPUs, lr 1e-4 (configs/_base_/schedules/schedule_gain_voc.py). On one GPU:
#   --cfg-options train_dataloader.batch_size=16
# On 8 GPUs with 2 images each keep the total batch: train_dataloader.batch_size=2.
_base_ = [
    '../_base_/models/gain_vgg16.py', '../_base_/datasets/voc12_aug_cls.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_gain_voc.py'
]
log_processor = dict(by_epoch=True)
# L_am starts after about one epoch of L_cl only (662 iterations at the total batch of
# 16): Grad-CAM of the new, random fc8 says nothing at first. Not in the paper, which
# trains L_self from the start: model.head.am_start_iter=0.
model = dict(head=dict(am_start_iter=662))
# The paper gives no input size or augmentation. 321 x 321 crops (DeepLab's, also of
# GAIN's segmentation stage) of the image with its short side resized to 321-481, and
# horizontal flips; every crop has the full size, so no batch is padded (padding would
# enter the fc head's average pooling).
crop_size = (321, 321)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResize', scale=(10000, 321), ratio_range=(1.0, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
batch_size = 8  # per GPU
# A fixed seed, persistent_workers=False and ReseedHook: --resume continues exactly
# (the sampler order, the augmentation and the dropout of fc6 / fc7 draw what the
# uninterrupted run drew; mmwsss/engine/hooks/reseed_hook.py). Without a seed MMEngine
# draws one per run and builds the sampler and the loader workers with it before it
# resumes: the resumed run would see the images in another order.
randomness = dict(seed=0)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='ReseedHook')]
# tools/make_pseudo_labels.py with this config: GAIN's localization cues (§4,
# following SEC): A^c > 0.2 max A^c for the image's classes, several classes -> 255,
# background from a saliency map (the paper's "[30] several times" is unresolved;
# --saliency-dir or data_prefix.saliency_path), everything else 255
# (GAINCues in docs/pseudo_labels.md).
pseudo_label_rule = dict(
    type='GAINCues', fg_ratio=0.2, overlap='ignore', background='saliency',
    bg_saliency=32)
