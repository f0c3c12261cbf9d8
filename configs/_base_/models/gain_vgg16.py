# GAIN's classifier (Li et al., "Tell Me Where to Look: Guided Attention Inference
# Network", CVPR 2018 / TPAMI 2020, §3.1 and §4.1; docs/methods/gain.md): the stock
# ImageNet VGG16 "without changing the network structure" -- conv1_1..relu5_3, pool5,
# fc6 -> fc7 -> fc8 (20 VOC classes, new) -- with GAIN's attention-mining stream.
# The Grad-CAM attention (Eqs. 1-2) is taken at relu5_3, the last convolutional layer
# (stride 16; 20 x 20 for a 321 x 321 crop): the backbone is the plain VGG16 without
# pool5 and VGGFCHead applies pool5 itself, then torchvision's adaptive 7 x 7 average
# pooling, so any input size works (at 224 x 224 this is torchvision's vgg16 exactly).
# ImageNet weights: conv1_1..conv5_3 and fc6 / fc7 from torchvision's vgg16-397923af.pth
# (classifier.0 / classifier.3) under data/pretrained/ -- nothing is downloaded.
data_preprocessor = dict(
    type='WSSSDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    # the training crops all have one size (nothing is padded); test batches are 1
    size_divisor=1)
vgg16_imagenet = 'data/pretrained/vgg16-397923af.pth'
model = dict(
    type='WSClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DeepLabVGG16',
        variant='plain',
        with_last_pool=False,  # ends at relu5_3: GAIN's attention layer
        out_indices=(4, ),
        init_cfg=dict(type='Pretrained', checkpoint=vgg16_imagenet)),
    head=dict(
        type='GAINHead',
        cls_head=dict(
            type='VGGFCHead',
            in_channels=512,
            num_classes=20,
            fc_channels=4096,
            pooled_size=7,
            with_pool5=True,
            dropout_ratio=0.5,
            # fc6 / fc7 from ImageNet, fc8 new (normal, std 0.01)
            init_cfg=dict(type='Pretrained', checkpoint=vgg16_imagenet)),
        # Grad-CAM by autograd through fc8..pool5 (no closed form for an fc head)
        attention='autograd',
        # Eq. 4: sigma and omega are not given in the paper; 0.5 / 10 as most
        # public re-implementations (T(0) = 0.0067, T(1) = 0.9933)
        sigma=0.5,
        omega=10.0,
        alpha=1.0,  # Eq. 6, "in all of our experiments"
        am_score='sigmoid',  # s^c of Eq. 5: the paper does not say
        am_grad='all',  # the paper states no stop-gradient
        am_start_iter=0,  # the configs set a warm-up (see configs/gain/)
        second_order=False,  # w^c a constant kernel (the paper's wording)
        mining_bn='eval',  # VGG16 has no batch norm: no effect
        ext_weight=10.0,  # the omega of Eqs. 8 and 10
        ext_supervision=(),  # plain GAIN; the GAIN_ext configs list theirs
        normalize='minmax'),
    # GAIN's attention: one map per class at the image's own size (the paper
    # describes no test-time augmentation); scales=(1.0, 0.5, 1.5, 2.0), flip=True
    # gives the irn / OAA multi-scale inference
    test_cfg=dict(scales=(1.0, ), flip=False, fusion='sum', restrict='gt'))
