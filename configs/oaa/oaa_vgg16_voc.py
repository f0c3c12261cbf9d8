# OAA: online attention accumulation (Jiang et al., TPAMI 2022 / ICCV 2019; references
# and details: docs/methods/oaa.md)
# on VOC12-aug. The classifier and its recipe are the CAM baseline's
# (configs/cam/cam_vgg16_voc.py: VGG16 OS8 + 3 extra convs + 1x1 class conv + GAP, SGD lr
# 1e-3 with x1/x2/x10/x20 multipliers, weight decay 2e-4 (official code: 5e-4), batch
# 1 x 5 accumulated steps, 15 epochs, lr / 10 at epoch 10, short side 224 + ColorJitter);
# OAAHook accumulates the attention of every training visit.
#   tools/dist_train.sh configs/oaa/oaa_vgg16_voc.py 8
#   -> work_dirs/oaa_vgg16_voc/oaa_maps/<img_id>.npz (cumulative maps, CAM format)
#   tools/eval_seeds.py work_dirs/oaa_vgg16_voc/oaa_maps configs/oaa/oaa_vgg16_voc.py
#   (or from any checkpoint: tools/export_oaa_maps.py CKPT --out DIR)
_base_ = ['../cam/cam_vgg16_voc.py']
# The official code visits the images in a fixed order (shuffle=False) because its maps
# are keyed by loader index; mmwsss keys them by image id in a canonical frame, so
# shuffle=True and geometric augmentation (flip, random resize, RandomCropWithBox) work
# too. The default keeps the official order.
train_dataloader = dict(sampler=dict(type='DefaultSampler', shuffle=False))
custom_hooks = [
    dict(
        type='OAAHook',
        fusion='max',  # Eq. 5; 'avg' = Eq. 10 (1.6 mIoU lower, Tab. 4)
        gate='paper',  # s_c > every non-target score; 'topk' = official code
        start_epoch=1,  # official code skips the first epoch (paper: 0)
        fallback_last_epoch=True,  # official code: every pair ends with a map
        canonical_short_side=224,  # maps kept in the 224-short-side frame / 8
        canonical_stride=8,
        export_dir='oaa_maps',
        export_interpolation='bicubic'),
]
# tools/make_pseudo_labels.py with this config: OAA's proxy labels (the official code's
# gen_gt.py, [C]; needs --saliency-dir with the DSS saliency maps). The official code
# runs no CRF here; add one with --rule-options crf=irn_label.
pseudo_label_rule = dict(type='SaliencyBackground')
