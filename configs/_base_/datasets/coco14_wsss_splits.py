# The MS-COCO 2014 splits (80 classes + background, image labels from
# cls_labels_coco.npy) for a WSSS classifier config written for VOC: each dict has the
# keys of that config's VOC dataset, so it merges into it and the config's pipelines
# stay. Prepare the data with tools/dataset_converters/coco_wsss.py (docs/datasets.md).
# Use (configs/vwl/vwl_l_r101_coco.py):
#   _base_ = ['./vwl_l_r101_voc.py', '../_base_/datasets/coco14_wsss_splits.py']
#   train_dataloader = dict(dataset={{_base_.coco14_train_dataset}})
#   val_dataloader = dict(dataset={{_base_.coco14_val_dataset}})
coco14_train_dataset = dict(
    type='COCOWSSSDataset',
    data_root='data/coco2014',
    ann_file='ImageSets/train.txt',
    label_source='cls_file',
    cls_label_file='cls_labels_coco.npy',
    data_prefix=dict(
        img_path='train2014', seg_map_path='SegmentationClass/train2014'))
# validation (classification mAP, seed mIoU) on COCO val; CAMs for pseudo labels are
# exported from train (tools/export_cams.py: --split train, the default)
coco14_val_dataset = dict(
    coco14_train_dataset,
    ann_file='ImageSets/val.txt',
    data_prefix=dict(
        img_path='val2014', seg_map_path='SegmentationClass/val2014'))
