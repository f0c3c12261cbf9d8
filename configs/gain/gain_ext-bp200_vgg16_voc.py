# GAIN^{b+p}_ext (Li et al., CVPR 2018 / TPAMI 2020, Tables 1, 2, 5; docs/methods/gain.md):
# 200 extra VOC train images, half with pixel masks and half with boxes (100P + 100B;
# 61.7 val mIoU with the paper's segmentation stage; 732P + 732B: 63.2). The loss is
# not written out in the paper: L_cl + alpha L_am + 10 L_e (pixel images)
# + 10 L_bbox (box images). Lists: see configs/gain/gain_ext-p200_vgg16_voc.py
# (tools/misc/make_strong_subsets.py ... --kind b+p -> ImageSets/GAIN/bp_200_pixel.txt,
# bp_200_box.txt: one seeded permutation split in turn).
# Another size: --cfg-options pixel_subset=ImageSets/GAIN/bp_1464_pixel.txt
#   box_subset=ImageSets/GAIN/bp_1464_box.txt
#   tools/dist_train.sh configs/gain/gain_ext-bp200_vgg16_voc.py 2
_base_ = ['./gain_ext-p200_vgg16_voc.py']
pixel_subset = 'ImageSets/GAIN/bp_200_pixel.txt'
box_subset = 'ImageSets/GAIN/bp_200_box.txt'
model = dict(head=dict(ext_supervision=('pixel', 'box')))
train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(saliency_path='SaliencyDSS'),
        strong_subsets=dict(pixel=pixel_subset, box=box_subset)))
