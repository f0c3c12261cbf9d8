# OAA+++ on the toy dataset: the IAM trained on the OAA++ maps of
# configs/toy/oaa_drop_r18_toy.py.
#   python tools/train.py configs/toy/oaa_drop_r18_toy.py
#   python tools/train.py configs/toy/iam_drop_r18_toy.py
_base_ = './iam_r18_toy.py'
attention_targets = 'work_dirs/oaa_drop_r18_toy/oaa_maps'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='LoadAttentionTargets', cam_dir=attention_targets, num_classes=8),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
