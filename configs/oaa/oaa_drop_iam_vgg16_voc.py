# OAA+++ : the integral attention model trained on the OAA++ cumulative maps
# ([T] Tab. 1; oaa.md variant table).
#   tools/dist_train.sh configs/oaa/oaa_drop_vgg16_voc.py 8
#   tools/dist_train.sh configs/oaa/oaa_drop_iam_vgg16_voc.py 8
_base_ = ['./oaa_iam_vgg16_voc.py']
attention_targets = 'work_dirs/oaa_drop_vgg16_voc/oaa_maps'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, 224), keep_ratio=True,
         interpolation='bicubic'),
    dict(type='mmpretrain.ColorJitter', brightness=0.3, contrast=0.3,
         saturation=0.3, hue=0.1),
    dict(type='LoadAttentionTargets', cam_dir=attention_targets, num_classes=20),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
