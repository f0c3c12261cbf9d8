# PASCAL VOC 2012 (train: 1,464 images, the split WSSS seed/CAM quality is reported on).
_base_ = './voc12_aug.py'
train_dataloader = dict(
    dataset=dict(
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass')))
