# EDAM (Wu et al., CVPR 2021; docs/methods/edam.md) on MS-COCO 2014 (80 classes,
# image labels only), with the VOC config's classifier, pipeline and schedule:
# 30k iterations of 4 pairs sharing a class (about 1.5 passes over the 82k train
# images as anchors). The paper's COCO experiment (§4.6) is on COCO-Stuff 10k with
# the 20 VOC classes, which mmwsss does not ship; these settings are not the paper's.
# Prepare the data with tools/dataset_converters/coco_wsss.py (docs/datasets.md).
#   python tools/train.py configs/edam/edam_resnet38d_coco.py
#   python tools/export_cams.py configs/edam/edam_resnet38d_coco.py \
#       work_dirs/edam_resnet38d_coco/iter_30000.pth --out work_dirs/edam_resnet38d_coco/cams
#   python tools/eval_seeds.py work_dirs/edam_resnet38d_coco/cams \
#       configs/edam/edam_resnet38d_coco.py
_base_ = ['./edam_resnet38d_voc.py', '../_base_/datasets/coco14_wsss_splits.py']
dataset_type = 'COCOWSSSDataset'
data_root = 'data/coco2014'
model = dict(head=dict(num_classes=80))
train_dataloader = dict(dataset={{_base_.coco14_train_dataset}})
val_dataloader = dict(dataset={{_base_.coco14_val_dataset}})
test_dataloader = val_dataloader
