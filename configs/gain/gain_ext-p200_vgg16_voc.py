# GAIN^p_ext (Li et al., CVPR 2018 / TPAMI 2020, §3.2, Eqs. 7-8; docs/methods/gain.md):
# GAIN plus a direct loss on the attention of 200 VOC train images with pixel masks,
# L_ext = L_cl + alpha L_am + omega L_e, omega = 10 (Tables 1, 4: 200 / 400 / 900 /
# 1,464 images; 62.2 / 64.1 val mIoU with the paper's segmentation stage). The masks
# only train the attention: pseudo labels and segmentation see image labels only.
# The subset lists (seeded, nested: the 200 ids are among the 400) are made once by
#   python tools/misc/make_strong_subsets.py --data-root data/VOCdevkit/VOC2012 \
#       --num 200 400 900 1464 --kind pixel box b+p --seed 0
#   -> data/VOCdevkit/VOC2012/ImageSets/GAIN/pixel_200.txt, ... (docs/datasets.md,
#      section 'Strong subsets')
# Another subset: --cfg-options pixel_subset=ImageSets/GAIN/pixel_1464.txt
#   tools/dist_train.sh configs/gain/gain_ext-p200_vgg16_voc.py 2
# then export, seeds and pseudo labels as configs/gain/gain_vgg16_voc.py.
# Name: {method}_{variant}_{backbone}_{data}, as oaa_drop_vgg16_voc.py; the variant is
# one field, hyphenated as MMSeg does inside a field (ext-p200, ext-b200, ext-bp200).
_base_ = ['./gain_vgg16_voc.py']
pixel_subset = 'ImageSets/GAIN/pixel_200.txt'  # relative to data_root
model = dict(head=dict(ext_supervision=('pixel', )))
# LoadExtraSupervision loads the GT mask of the listed images only (before any
# geometric transform); RandomCrop keeps cat_max_ratio=1.0 (docs/datasets.md)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadExtraSupervision'),
    dict(type='RandomResize', scale=(10000, 321), ratio_range=(1.0, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=(321, 321)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
# num_strong of every batch from the strong subset (the paper's batch of 1 would see
# one of them once in about fifty images); the sampler's batch_size must equal the
# loader's: one variable
batch_size = 8  # per GPU
num_strong = 2
train_dataloader = dict(
    batch_size=batch_size,
    sampler=dict(type='StrongMixSampler', batch_size=batch_size,
                 num_strong=num_strong, shuffle=True),
    dataset=dict(
        strong_subsets=dict(pixel=pixel_subset), pipeline=train_pipeline))
