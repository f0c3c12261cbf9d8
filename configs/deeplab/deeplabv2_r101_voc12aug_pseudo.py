# DeepLab-v2 ResNet-101 (ASPP, MSC; kazuto1011/deeplab-pytorch recipe used by the OAA,
# EDAM and VWL code: batch 10, crop 321, scale 0.5-1.5, flip, lr 2.5e-4 poly, ASPP x10
# / bias x20 without weight decay, wd 5e-4, 20k iterations, frozen BN) on pseudo labels.
# ImageNet init by default (the official OAA/EDAM runs start from COCO-trained DeepLab
# weights, which leak pixel supervision: docs/segmentation.md).
#   tools/dist_train.sh configs/deeplab/deeplabv2_r101_voc12aug_pseudo.py 2 \
#       --cfg-options train_dataloader.dataset.data_prefix.pseudo_label_path=PseudoLabels/oaa
#   test (MSC + CRF): python tools/test.py CONFIG CKPT --cfg-options model.test_cfg.crf=deeplab_resnet
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
train_dataloader = dict(
    dataset=dict(data_prefix=dict(pseudo_label_path='PseudoLabels/oaa')))
# tools/test.py CONFIG CKPT --tta: the papers' protocol, multi-scale + flip (tta_pipeline of
# the dataset config), softmax averaged, then one dense CRF (crf=None: no CRF).
tta_model = dict(type='CRFSegTTAModel', crf='deeplab_resnet')
