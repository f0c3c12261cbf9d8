# EDAM's classifier (Wu et al., "Embedded Discriminative Attention Mechanism for
# Weakly Supervised Semantic Segmentation", CVPR 2021, §3 and §4.2;
# docs/methods/edam.md): ResNet-38d (output stride 8, 4096 channels, bn7 without the
# final ReLU of PSA: the official code comments it out; all BN frozen, conv1a and
# b2-b2_2 frozen) + the EDAM head: the DA layer (a bias-free 3x3 conv to 21 masks,
# L2-normalised absolute values, Eq. 1; background first), a bias-free 1x1 reduction
# to d = 128, and the CMA (one Transformer block per class, 2 heads, FFN 512, dropout
# 0.1, sinusoidal positions + a learned segment embedding, a bias-free classifier per
# class; Eqs. 2-4) over pairs of images that share a class.
# ImageNet weights: the MXNet ResNet-38 of Wu et al. (ilsvrc-cls_rna-a1_cls1000_ep-0001)
# as PSA / EDAM load it, converted with tools/model_converters/resnet38d_to_mmwsss.py
# to data/pretrained/resnet38d_ilsvrc_mmwsss.pth (docs/getting_started.md); nothing
# is downloaded.
data_preprocessor = dict(
    type='WSSSDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    # crops smaller than 368 are padded after normalisation with 0 (the mean
    # colour), as the official code pads, and the padding takes part in the
    # pooling as there
    pad_val=0,
    seg_pad_val=255,
    size_divisor=1)
resnet38d_imagenet = 'data/pretrained/resnet38d_ilsvrc_mmwsss.pth'
group_size = 2  # images per CMA group: the paper's pair of "two similar images"
model = dict(
    type='WSClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet38d',
        final_relu=False,
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=resnet38d_imagenet)),
    head=dict(
        type='EDAMHead',
        in_channels=4096,
        num_classes=20,
        embed_dims=128,
        group_size=group_size,
        da_cfg=dict(kernel_size=3, background_index=0),
        cma_cfg=dict(
            num_heads=2, ffn_channels=512, num_layers=1, dropout=0.1,
            num_segments=5, layer_norm='bert', gelu_approximate='tanh')),
    # EDAM's inference (the official infer_cls.py): the DA masks at scales 1, 0.5,
    # 1.5, 2 (bicubic) x flip, summed, max-normalised, the image's GT classes
    test_cfg=dict(
        scales=(1.0, 0.5, 1.5, 2.0), flip=True, fusion='sum', restrict='gt',
        resize_mode='bicubic'))
