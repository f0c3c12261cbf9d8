# Plain CAM baseline with the OAA classification network on VOC12-aug (the "CAM" row of
# docs/methods/oaa.md).
#   tools/dist_train.sh configs/cam/cam_vgg16_voc.py 8      (or python tools/train.py ...)
#   tools/export_cams.py configs/cam/cam_vgg16_voc.py CKPT --out work_dirs/cam_vgg16_voc/cams
#   tools/eval_seeds.py work_dirs/cam_vgg16_voc/cams configs/cam/cam_vgg16_voc.py --split val
# Note: the paper's batch of 5 is 1 image x 5 accumulated steps per GPU; with N GPUs the
# effective batch is 5N (scale lr if you change it).
_base_ = [
    '../_base_/models/cam_vgg16.py', '../_base_/datasets/voc12_aug_cls.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_cam_voc.py'
]
log_processor = dict(by_epoch=True)
