# EDAM: Embedded Discriminative Attention Mechanism (Wu, Huang, Gao et al., CVPR 2021)
# on VOC12-aug, image labels only; details, equations and the paper's numbers:
# docs/methods/edam.md. ResNet-38d + DA layer + CMA over pairs of images sharing a
# class (ClassGroupSampler), 4 pairs per step, 30k iterations.
#   python tools/train.py configs/edam/edam_resnet38d_voc.py
#   tools/dist_train.sh configs/edam/edam_resnet38d_voc.py 4 \
#       --cfg-options train_dataloader.batch_size=2 train_dataloader.sampler.batch_size=2
#   (4 GPUs with 1 pair each, as the official code)
#   python tools/export_cams.py configs/edam/edam_resnet38d_voc.py \
#       work_dirs/edam_resnet38d_voc/iter_30000.pth --out work_dirs/edam_resnet38d_voc/cams
#   python tools/eval_seeds.py work_dirs/edam_resnet38d_voc/cams \
#       configs/edam/edam_resnet38d_voc.py --split val
#   (--split val: the val_dataloader's VOC train, 1,464 images, as the paper reports)
#   python tools/make_pseudo_labels.py configs/edam/edam_resnet38d_voc.py \
#       work_dirs/edam_resnet38d_voc/cams --out data/VOCdevkit/VOC2012/PseudoLabels/edam \
#       --saliency-dir data/VOCdevkit/VOC2012/SaliencyPoolNet --eval
_base_ = [
    '../_base_/models/edam_resnet38d.py', '../_base_/datasets/voc12_aug_cls.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_edam_voc.py'
]
# The official pipeline (voc12/data.py, train_EDAM_cls.py): the long side resized
# to 256-512 (bicubic), flip, ColorJitter(0.3, 0.3, 0.3, 0.1), a random 368 crop;
# smaller images are padded by the data preprocessor (after normalisation, with 0).
crop_size = (368, 368)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResize', scale=(512, 512), ratio_range=(0.5, 1.0),
         keep_ratio=True, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='mmpretrain.ColorJitter', brightness=0.3, contrast=0.3,
         saturation=0.3, hue=0.1),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackWSSSInputs'),
]
# (size_divisor=None: the base's size_divisor=1 and a size together stop MMSeg's
# stack_batch: 'only one of size and size_divisor should be valid')
model = dict(data_preprocessor=dict(size=crop_size, size_divisor=None))
# 4 pairs of images sharing a class per step on one GPU (the paper's batch of 8);
# on N GPUs keep 8 in total: batch_size = 8 // N (a multiple of the group size)
batch_size = 8
# A fixed seed, persistent_workers=False and ReseedHook: --resume continues exactly
# (the sampler's pairs, the augmentation and the dropout of b6 / b7 and the CMA draw
# what the uninterrupted run drew; mmwsss/engine/hooks/reseed_hook.py).
randomness = dict(seed=0)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(
        _delete_=True,
        type='ClassGroupSampler',
        batch_size=batch_size,
        group_size={{_base_.group_size}},
        mode='similar',
        shuffle=True),
    dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='ReseedHook')]
# tools/make_pseudo_labels.py with this config: EDAM's post-processing (Alg. 1,
# pixel-wise as the official eval.py) on the PSA CRF marginals of the DA masks
# (3 mean-field iterations), with PoolNet saliency maps (--saliency-dir; theta 20,
# alpha 0.25, beta 0.95: the paper's values). Without saliency, the paper's other
# two settings (Table 5), with the same command:
#   --rule ThresholdBackground --rule-options threshold=0.5
#       (a background threshold; the official eval.py sweeps 0.40-0.58,
#       tools/eval_seeds.py finds the best one)
#   --rule ThresholdBackground --rule-options crf=psa crf_unary=one_minus_max
#       (the CRF alone, EDAM's "dCRF")
pseudo_label_rule = dict(
    type='EDAMSaliency', theta=20, alpha=0.25, beta=0.95, apply_on='crf',
    crf='psa')
