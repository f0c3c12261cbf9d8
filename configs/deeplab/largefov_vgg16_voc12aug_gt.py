# DeepLab-LargeFOV (VGG16) trained on the VOC12 train_aug GT masks: the fully supervised
# upper bound of the pseudo-label configs (OAA TPAMI Tab. 1 "UpperBound": 70.8 val,
# multi-scale + CRF; rulixiang/deeplab-pytorch: 65.5 val single scale, 69.4 with CRF).
#   tools/dist_train.sh configs/deeplab/largefov_vgg16_voc12aug_gt.py 2
_base_ = [
    '../_base_/models/largefov_vgg16.py',
    '../_base_/datasets/voc12_aug_deeplab.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_deeplab_20k.py'
]
# training crops smaller than crop_size are padded to it (labels with 255)
crop_size = (321, 321)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
# tools/test.py CONFIG CKPT --tta: the papers' protocol, multi-scale + flip (tta_pipeline of
# the dataset config), softmax averaged, then one dense CRF (crf=None: no CRF).
tta_model = dict(type='CRFSegTTAModel', crf='deeplab_vgg')
