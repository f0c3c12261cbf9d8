# VWL-M ("Ours-M"): visual words learning with a memory-bank codebook + hybrid pooling
# (Ru et al., IJCV 2023; docs/methods/vwl.md) on VOC12-aug, image labels only: VWL-L's
# config (configs/vwl/vwl_l_r101_voc.py: ResNet-101 OS16, the data, the schedule, the
# pseudo-label rule) with the memory bank of K = 256 words, a buffer moved towards the
# per-word means of each step's features with rho = 1e-3 (Eqs. 6-7; the sums and
# counts all-reduced over the processes, so every rank holds the bank of the global
# batch), no word-to-image classifier and no decorrelation loss (Eq. 12), and only
# the stem frozen (the official v2/network/resnet_cam_mbk.py trains layer1-4). The
# bank is part of the model's state: every checkpoint holds it, --resume restores it.
# The paper reports (VOC train, 1,464 images) 56.9 mIoU for the CAMs (background
# threshold 0.13 in the official code), 62.6 with the dense CRF (this config's
# pseudo-label rule), 71.1 after IRNet (not in mmwsss).
#   python tools/train.py configs/vwl/vwl_m_r101_voc.py
#   tools/dist_train.sh configs/vwl/vwl_m_r101_voc.py 8 --cfg-options train_dataloader.batch_size=2
# (8 GPUs with 2 images each: the global batch of 16, one bank update per step)
#   python tools/export_cams.py configs/vwl/vwl_m_r101_voc.py \
#       work_dirs/vwl_m_r101_voc/iter_3966.pth --out work_dirs/vwl_m_r101_voc/cams
#   python tools/eval_seeds.py work_dirs/vwl_m_r101_voc/cams \
#       configs/vwl/vwl_m_r101_voc.py --split val --thresholds 0.13
# (--split val: the val_dataloader's VOC train, 1,464 images, as the paper reports)
#   python tools/make_pseudo_labels.py configs/vwl/vwl_m_r101_voc.py \
#       work_dirs/vwl_m_r101_voc/cams --out data/VOCdevkit/VOC2012/PseudoLabels/vwl_m \
#       --workers 8 --eval
_base_ = './vwl_l_r101_voc.py'
model = dict(
    # conv1 and bn1 frozen, layer1-4 trained (MMSeg's frozen_stages=0)
    backbone=dict(frozen_stages=0),
    head={{_base_.memory_bank_head}})
