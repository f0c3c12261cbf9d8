# OAA+ on the toy dataset: the integral attention model (same network without GAP,
# hybrid loss Eq. 7-9) trained on the OAA cumulative maps of configs/toy/oaa_r18_toy.py.
#   python tools/train.py configs/toy/oaa_r18_toy.py          (writes the targets)
#   python tools/train.py configs/toy/iam_r18_toy.py
#   python tools/export_cams.py configs/toy/iam_r18_toy.py \
#       work_dirs/iam_r18_toy/epoch_40.pth --out work_dirs/iam_r18_toy/cams
#   python tools/eval_seeds.py work_dirs/iam_r18_toy/cams configs/toy/iam_r18_toy.py
_base_ = './cam_r18_toy.py'
# data_prefix.attention_path, relative to the working directory; elsewhere:
#   --cfg-options attention_targets=DIR
attention_targets = 'work_dirs/oaa_r18_toy/oaa_maps'
model = dict(
    head=dict(
        type='IAMHead',
        loss=dict(type='HybridAttentionLoss', reduction='per_class')),
    test_cfg=dict(scales=(1.0, ), flip=False, restrict='gt'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='LoadAttentionTargets', num_classes=8),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(attention_path=attention_targets),
        pipeline=train_pipeline))
val_evaluator = [dict(type='SeedIoUMetric')]
test_evaluator = val_evaluator
# method comparison: the IAM's exported CAMs; the run needs the oaa_maps folder of the
# same seed's run of oaa_r18_toy.py, passed as --cfg-options attention_targets=DIR
method = dict(
    name='OAA+',
    seeds='cams',
    requires=dict(attention_targets=('oaa_r18_toy.py', 'oaa_maps')))
