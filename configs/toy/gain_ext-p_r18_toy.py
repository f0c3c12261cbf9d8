# GAIN_ext with pixel-level extra supervision (GAIN^p_ext; Li et al., "Tell Me Where
# to Look: Guided Attention Inference Network", CVPR 2018, §3.2) on the toy dataset:
# configs/toy/gain_r18_toy.py plus the pixel attention loss (Eqs. 7-8, weight 10) on
# the 10 % of the train images listed in ImageSets/GAIN/pixel_10pct.txt (the toy
# generator writes it: 40 of the 400 images, docs/toy_dataset.md; the paper uses 1-10
# % of the labels). Every image, strong or not, also trains with its image labels
# (L_cl, L_am). The GT masks only train the classifier's attention; the seeds and the
# segmentation stage see image labels only.
#   python tools/train.py configs/toy/cam_r18_toy.py
#   python tools/train.py configs/toy/gain_ext-p_r18_toy.py
#   python tools/export_cams.py configs/toy/gain_ext-p_r18_toy.py \
#       work_dirs/gain_ext-p_r18_toy/epoch_40.pth \
#       --out work_dirs/gain_ext-p_r18_toy/cams
#   python tools/eval_seeds.py work_dirs/gain_ext-p_r18_toy/cams \
#       configs/toy/gain_ext-p_r18_toy.py
_base_ = './gain_r18_toy.py'
batch_size = 16
# GAIN_ext fine-tunes a trained classifier, as the paper does (an ImageNet VGG, GAIN
# TPAMI §4.1): here the toy CAM classifier of configs/toy/cam_r18_toy.py (the same
# backbone and head; GAINHead loads the plain head's weights into its cls_head), with
# L_cl, L_am and L_e from the first iteration (the paper's setting; no warm-up). Trained
# from scratch instead, this toy classifier does not learn to classify under L_e (train
# mAP 51 with a quarter-schedule warm-up, 47 without; CAM 99.99): the pixel loss
# compares the min-max-normalised attention with the mask, so its gradient is divided
# by the attention's range, which is 1e-4 for an untrained classifier, and outweighs
# L_cl's 2,600 to 1 (docs/benchmarks.md, section 'GAIN on the toy dataset').
# The CAM checkpoint: tools/analysis/compare_methods.py and `make demo
# METHOD=gain_ext-p` train the CAM run of the same seed first and pass its last
# checkpoint (method.requires below); by hand, train configs/toy/cam_r18_toy.py first
# (load_from below is where its run ends) or pass --cfg-options load_from=<checkpoint>.
load_from = 'work_dirs/cam_r18_toy/epoch_40.pth'
model = dict(
    head=dict(
        ext_supervision=('pixel', ),  # the paper's omega = 10 (ext_weight)
        am_start_iter=0,
        ext_start_iter=0))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadExtraSupervision'),  # the GT mask of the strong images only
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
# StrongMixSampler: num_strong strong images in every batch, one pass over the 360
# weak images per epoch. 2 of 16: the subset's share of the data, rounded (16 x 10 %
# = 1.6): 26 iterations per epoch (14 weak images each), every strong image about
# 1.3 times per epoch, close to uniform sampling, but in every batch
train_dataloader = dict(
    batch_size=batch_size,
    sampler=dict(
        _delete_=True,
        type='StrongMixSampler',
        batch_size=batch_size,
        num_strong=2,
        shuffle=True),
    dataset=dict(
        strong_subsets=dict(pixel='ImageSets/GAIN/pixel_10pct.txt'),
        pipeline=train_pipeline))
method = dict(
    name='GAIN_ext-p',
    seeds='cams',
    requires=dict(load_from=('cam_r18_toy.py', 'last_checkpoint')))
