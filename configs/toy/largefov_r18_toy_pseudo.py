# DeepLab-LargeFOV on the toy dataset trained on pseudo labels (the WSSS setting):
# configs/toy/largefov_r18_toy_gt.py with the training labels read from
# data_root/PseudoLabels/cam (e.g. made by
#   python tools/make_pseudo_labels.py configs/toy/cam_r18_toy.py CAM_DIR \
#       --out data/toy/PseudoLabels/cam --rule SaliencyBackground --workers 2)
#   python tools/train.py configs/toy/largefov_r18_toy_pseudo.py
# Another folder: --cfg-options train_dataloader.dataset.data_prefix.pseudo_label_path=DIR
_base_ = './largefov_r18_toy_gt.py'
train_dataloader = dict(
    dataset=dict(data_prefix=dict(pseudo_label_path='PseudoLabels/cam')))
