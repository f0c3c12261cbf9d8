# GAIN^b_ext (Li et al., CVPR 2018 / TPAMI 2020, §3.3, Eqs. 9-10; docs/methods/gain.md):
# GAIN plus a box loss on the attention of 200 VOC train images with boxes: zero
# outside the class's boxes, the saliency map inside them, omega = 10 (Tables 1, 3:
# 61.1 val mIoU with 200 boxes). Needs the VOC XML boxes and a saliency map per box
# image (data/VOCdevkit/VOC2012/SaliencyDSS/<id>.png; the paper's saliency model is
# unspecified). Lists: see configs/gain/gain_ext-p200_vgg16_voc.py
# (tools/misc/make_strong_subsets.py ... --kind box -> ImageSets/GAIN/box_200.txt).
# Another subset: --cfg-options box_subset=ImageSets/GAIN/box_1464.txt
#   tools/dist_train.sh configs/gain/gain_ext-b200_vgg16_voc.py 2
_base_ = ['./gain_ext-p200_vgg16_voc.py']
box_subset = 'ImageSets/GAIN/box_200.txt'  # relative to data_root
model = dict(head=dict(ext_supervision=('box', )))
train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(saliency_path='SaliencyDSS'),
        strong_subsets=dict(_delete_=True, box=box_subset)))
