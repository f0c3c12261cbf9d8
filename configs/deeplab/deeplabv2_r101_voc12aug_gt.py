# DeepLab-v2 ResNet-101 (ASPP, MSC) on the VOC12 train_aug GT masks: the upper bound
# (kazuto1011/deeplab-pytorch, COCO init: 76.65 val, 77.93 with CRF; ImageNet init lower).
#   tools/dist_train.sh configs/deeplab/deeplabv2_r101_voc12aug_gt.py 2
_base_ = [
    '../_base_/models/deeplabv2_r101.py',
    '../_base_/datasets/voc12_aug_deeplab.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_deeplab_20k.py'
]
# training crops smaller than crop_size are padded to it (labels with 255)
crop_size = (321, 321)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
optim_wrapper = dict(optimizer=dict(lr=2.5e-4))
# tools/test.py CONFIG CKPT --tta: the papers' protocol, multi-scale + flip (tta_pipeline of
# the dataset config), softmax averaged, then one dense CRF (crf=None: no CRF).
tta_model = dict(type='CRFSegTTAModel', crf='deeplab_resnet')
