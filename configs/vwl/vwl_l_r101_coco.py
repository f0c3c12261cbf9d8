# VWL-L ("Ours-L", Ru et al., IJCV 2023; docs/methods/vwl.md) on MS-COCO 2014 (80
# classes, image labels only). The paper reports COCO only after DeepLabV2 (36.2 mIoU
# on val) and leaves the classifier's COCO settings unspecified, and the official code
# has none: these reuse the VOC config's (configs/vwl/vwl_l_r101_voc.py: ResNet-101
# OS16, K = 256 words, the augmentation, CAM inference and pseudo-label rule) with 6
# epochs at a batch of 16: 6 x floor(82,081 / 16) = 6 x 5,130 = 30,780 iterations
# (the train images with at least one object, as EPS lists them).
# Prepare the data with tools/dataset_converters/coco_wsss.py (docs/datasets.md).
#   python tools/train.py configs/vwl/vwl_l_r101_coco.py
#   tools/dist_train.sh configs/vwl/vwl_l_r101_coco.py 8 --cfg-options train_dataloader.batch_size=2
# (8 GPUs with 2 images each: the global batch of 16)
#   python tools/export_cams.py configs/vwl/vwl_l_r101_coco.py \
#       work_dirs/vwl_l_r101_coco/iter_30780.pth --out work_dirs/vwl_l_r101_coco/cams
#   python tools/eval_seeds.py work_dirs/vwl_l_r101_coco/cams \
#       configs/vwl/vwl_l_r101_coco.py --thresholds 0.13
#   python tools/make_pseudo_labels.py configs/vwl/vwl_l_r101_coco.py \
#       work_dirs/vwl_l_r101_coco/cams --out data/coco2014/PseudoLabels/vwl_l \
#       --workers 8 --eval
_base_ = ['./vwl_l_r101_voc.py', '../_base_/datasets/coco14_wsss_splits.py']
dataset_type = 'COCOWSSSDataset'
data_root = 'data/coco2014'
model = dict(head=dict(num_classes=80))
train_dataloader = dict(dataset={{_base_.coco14_train_dataset}})
val_dataloader = dict(dataset={{_base_.coco14_val_dataset}})
test_dataloader = val_dataloader
# 6 epochs of 5,130 steps
max_iters = 30780
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=5130))
