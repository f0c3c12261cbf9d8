# VWL-L on the toy dataset (Ru et al., "Weakly supervised semantic segmentation by
# visual words learning and hybrid pooling", IJCV 2023; docs/methods/vwl.md): the toy
# CAM classifier (configs/toy/cam_r18_toy.py: backbone, extra 3x3 conv, data,
# optimiser, 40 epochs x 25 iterations) with VWL's head: hybrid pooling of the
# features for the image labels (Eqs. 8-10, gamma 2, splits 1 / 2 / 4), visual words
# from a learned codebook (Eqs. 2-5) with the word classifier on GAP(F), the
# word-to-image classifier and the decorrelation loss (Eqs. 13-15). The CAM is
# ReLU(W F) (Eq. 1); inference fuses a flip pair by max and the scales by sum, as
# the official code.
# Scaled to the toy: K = 64 words for 16 x 16 = 256 pixels per image (the paper's
# 256 words for 32 x 32 = 1024 pixels: a quarter as many words as pixels); no
# frozen stages (the toy backbone is trained from scratch; on VOC VWL-L detaches
# after layer2). The paper's defaults otherwise (tau 1, f_word the mean of Eq. 5,
# the squared DeCov of Eq. 13; docs/methods/vwl.md lists the official code's).
#   python tools/train.py configs/toy/vwl_l_r18_toy.py
#   python tools/export_cams.py configs/toy/vwl_l_r18_toy.py \
#       work_dirs/vwl_l_r18_toy/epoch_40.pth --out work_dirs/vwl_l_r18_toy/cams
#   python tools/eval_seeds.py work_dirs/vwl_l_r18_toy/cams configs/toy/vwl_l_r18_toy.py
_base_ = './cam_r18_toy.py'
num_words = 64
model = dict(
    head=dict(
        _delete_=True,
        type='VWLHead',
        in_channels=128,
        num_classes=8,
        num_extra_convs=1,
        extra_channels=128,
        codebook=dict(type='LearnedCodebook', num_words=num_words),
        tau=1.0,
        hist_reduce='mean',
        decov_loss=dict(type='DecorrelationLoss')),
    test_cfg=dict(fusion='sum', flip_fusion='max'))
# --resume continues exactly (the random flips of the main-process loader draw what
# the uninterrupted run drew; mmwsss/engine/hooks/reseed_hook.py)
custom_hooks = [dict(type='ReseedHook')]
method = dict(name='VWL-L', seeds='cams')
# tools/make_pseudo_labels.py with this config: VWL's "+CRF" (rulixiang/vwe
# v2/crf.py): softmax over [0.15, CAMs], dense CRF (10 iterations, Gaussian sxy 1
# compat 3, bilateral srgb 3 compat 4), the bilateral range scaled to the 128-px toy
# images (64 px x 128 / 500 = 16 px)
pseudo_label_rule = dict(
    type='ThresholdBackground',
    threshold=0.15,
    crf=dict(preset='vwl', bilateral=dict(sxy=16)),
    crf_unary='softmax')
