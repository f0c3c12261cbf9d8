# DeepLab-LargeFOV (VGG16) trained on pseudo labels of VOC12 train_aug, evaluated on
# VOC12 val GT (the OAA paper's VGG segmentation stage, TPAMI §4.1). Batch 10, crop 321,
# 20k iterations, poly lr 1e-3 (head x10 / bias x20), wd 5e-4.
#   python tools/make_pseudo_labels.py configs/oaa/oaa_vgg16_voc.py \
#       work_dirs/oaa_vgg16_voc/oaa_maps --out data/VOCdevkit/VOC2012/PseudoLabels/oaa \
#       --split train --rule SaliencyBackground --saliency-dir ... --workers 8
#   tools/dist_train.sh configs/deeplab/largefov_vgg16_voc12aug_pseudo.py 2 \
#       --cfg-options train_dataloader.dataset.data_prefix.pseudo_label_path=PseudoLabels/oaa
#   test with CRF: python tools/test.py CONFIG CKPT --cfg-options model.test_cfg.crf=deeplab_vgg
# batch_size is per process: 10 on 1 GPU; with N GPUs set it to 10 / N.
_base_ = [
    '../_base_/models/largefov_vgg16.py',
    '../_base_/datasets/voc12_aug_deeplab.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_deeplab_20k.py'
]
# training crops smaller than crop_size are padded to it (labels with 255)
crop_size = (321, 321)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(
    dataset=dict(data_prefix=dict(pseudo_label_path='PseudoLabels/oaa')))
# tools/test.py CONFIG CKPT --tta: the papers' protocol, multi-scale + flip (tta_pipeline of
# the dataset config), softmax averaged, then one dense CRF (crf=None: no CRF).
tta_model = dict(type='CRFSegTTAModel', crf='deeplab_vgg')
