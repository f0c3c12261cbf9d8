# VWL's classifier (Ru et al., "Weakly supervised semantic segmentation by visual words
# learning and hybrid pooling", IJCV 2023, §3 and §4.1; docs/methods/vwl.md), the
# learning-based codebook (VWL-L): an ImageNet ResNet-101 (torchvision layout: stride
# on the 3x3 conv, 7x7 stem + max pool) at output stride 16 -- strides 1 / 2 / 2 / 1
# of layer1-4 after the stride-4 stem, no dilation, 2048 channels -- with frozen
# BatchNorm statistics (norm_eval) and trainable BN scales / shifts, as the official
# code (rulixiang/vwe v2/network/resnet.py: FixedBatchNorm, strides (2, 2, 2, 1));
# the paper gives only "ResNet-101". Which stages are frozen is the method config's
# (VWL-L: stem + layer1-2; VWL-M: the stem).
# The VWL head: the bias-free 1x1 class conv on the hybrid pooling of the features
# (Eqs. 8-10: gamma 2, splits 1 / 2 / 4) for the image labels, the CAM ReLU(W F)
# (Eq. 1), K = 256 visual words (Eqs. 2-4, tau 1) predicted by a bias-free 1x1 word
# classifier on GAP(F), the learned codebook with the word-to-image classifier
# (Eq. 5) and the decorrelation loss (Eqs. 13-15); all loss weights 1.
# ImageNet weights: torchvision's resnet101-5d3b4d8f.pth (the official code's file)
# under data/pretrained/, read by MMSeg's ResNet as it is (same parameter names; the
# fc layer is left out); nothing is downloaded.
data_preprocessor = dict(
    type='WSSSDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    # the official code pads crops smaller than 512 after normalisation with 0, and
    # the padding takes part in the pooling there too; the method config sets `size`
    pad_val=0,
    seg_pad_val=255,
    size_divisor=1)
resnet101_imagenet = 'data/pretrained/resnet101-5d3b4d8f.pth'
num_words = 256
model = dict(
    type='WSClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=101,
        num_stages=4,
        out_indices=(3, ),
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 1),
        style='pytorch',
        contract_dilation=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint=resnet101_imagenet)),
    head=dict(
        type='VWLHead',
        in_channels=2048,
        num_classes=20,
        codebook=dict(type='LearnedCodebook', num_words=num_words),
        tau=1.0,
        hist_reduce='mean',
        decov_loss=dict(type='DecorrelationLoss'),
        pooling=dict(type='HybridPooling', gamma=2.0, split_sizes=(1, 2, 4))),
    # CAM inference as the official v2/infer_cam.py: full images at scales 1, 0.5,
    # 1.5, 2 (bicubic; the code resizes the image with PIL before normalising, here
    # the normalised input is resized), each with its horizontal flip; the flip pair
    # fused by max, the scales by sum; the image's GT classes, max-normalised
    test_cfg=dict(
        scales=(1.0, 0.5, 1.5, 2.0), flip=True, fusion='sum', flip_fusion='max',
        restrict='gt', resize_mode='bicubic'))
# VWL-M's head (merged into `model.head` by the VWL-M configs): the memory-bank
# codebook (Eqs. 6-7: EMA rate rho 1e-3, random initial words as the official
# v2/train_cam_memory.py) instead of the learned one, hence no word-to-image classifier
# and no decorrelation loss (Eq. 12)
memory_bank_head = dict(
    codebook=dict(
        _delete_=True,
        type='MemoryBankCodebook',
        num_words=num_words,
        rho=1e-3,
        init='random'),
    decov_loss=None)
