# VWL-M ("Ours-M", Ru et al., IJCV 2023; docs/methods/vwl.md) on MS-COCO 2014 (80
# classes, image labels only): the VWL-L COCO config (configs/vwl/vwl_l_r101_coco.py:
# the paper leaves the COCO settings unspecified, these reuse VOC's, 6 epochs at a
# batch of 16 = 30,780 iterations) with VWL-M's memory bank and frozen stem, as
# configs/vwl/vwl_m_r101_voc.py. The paper reports 36.1 mIoU on val after DeepLabV2.
# Prepare the data with tools/dataset_converters/coco_wsss.py (docs/datasets.md).
#   python tools/train.py configs/vwl/vwl_m_r101_coco.py
#   tools/dist_train.sh configs/vwl/vwl_m_r101_coco.py 8 --cfg-options train_dataloader.batch_size=2
# (8 GPUs with 2 images each: the global batch of 16)
#   python tools/export_cams.py configs/vwl/vwl_m_r101_coco.py \
#       work_dirs/vwl_m_r101_coco/iter_30780.pth --out work_dirs/vwl_m_r101_coco/cams
#   python tools/eval_seeds.py work_dirs/vwl_m_r101_coco/cams \
#       configs/vwl/vwl_m_r101_coco.py --thresholds 0.13
#   python tools/make_pseudo_labels.py configs/vwl/vwl_m_r101_coco.py \
#       work_dirs/vwl_m_r101_coco/cams --out data/coco2014/PseudoLabels/vwl_m \
#       --workers 8 --eval
_base_ = './vwl_l_r101_coco.py'
model = dict(
    # conv1 and bn1 frozen, layer1-4 trained (MMSeg's frozen_stages=0)
    backbone=dict(frozen_stages=0),
    head={{_base_.memory_bank_head}})
