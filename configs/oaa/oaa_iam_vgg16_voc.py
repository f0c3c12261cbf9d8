# OAA+ : the integral attention model (IAM, [T] §3.4, Eqs. 7-9; references and details:
# docs/methods/oaa.md, section 'Integral attention model'). The OAA
# classifier network without GAP, initialised from ImageNet VGG16, trained on the OAA
# cumulative maps as soft pixel targets with the hybrid loss; its class-aware maps
# (ReLU(F)/max, single scale, no flip) are the OAA+ attention maps.
#   tools/dist_train.sh configs/oaa/oaa_vgg16_voc.py 8          (makes the targets)
#   tools/dist_train.sh configs/oaa/oaa_iam_vgg16_voc.py 8
#   tools/export_cams.py configs/oaa/oaa_iam_vgg16_voc.py \
#       work_dirs/oaa_iam_vgg16_voc/epoch_15.pth --out work_dirs/oaa_iam_vgg16_voc/cams
_base_ = ['../cam/cam_vgg16_voc.py']
# the soft targets: the OAA maps of configs/oaa/oaa_vgg16_voc.py, relative to the
# working directory (data_prefix.attention_path; docs/datasets.md). Elsewhere:
#   --cfg-options attention_targets=DIR
attention_targets = 'work_dirs/oaa_vgg16_voc/oaa_maps'
model = dict(
    head=dict(
        type='IAMHead',
        # per-class normalisation as the paper (Eq. 9); 'global' = official ExLoss.
        # The official code does not divide this loss by iter_size while MMEngine
        # averages over accumulative_counts: loss_weight=5 reproduces its scale.
        loss=dict(type='HybridAttentionLoss', reduction='per_class',
                  pos_threshold=0.0)),
    # [C] test_iam.py: one forward at short side 224, no flip
    test_cfg=dict(scales=(1.0, ), flip=False, fusion='sum', restrict='gt'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, 224), keep_ratio=True,
         interpolation='bicubic'),
    dict(type='mmpretrain.ColorJitter', brightness=0.3, contrast=0.3,
         saturation=0.3, hue=0.1),
    # after every geometric transform: the targets follow the recorded geometry;
    # the files are data_prefix.attention_path of the dataset
    dict(type='LoadAttentionTargets', num_classes=20),
    dict(type='PackWSSSInputs'),
]
cam_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, 224), keep_ratio=True,
         interpolation='bicubic'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(attention_path=attention_targets),
        pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=cam_pipeline))
test_dataloader = val_dataloader
# the IAM has no meaningful image scores: seeds only
val_evaluator = [dict(type='SeedIoUMetric')]
test_evaluator = val_evaluator
# tools/make_pseudo_labels.py: OAA's proxy labels from the IAM maps (as oaa_vgg16_voc.py).
pseudo_label_rule = dict(type='SaliencyBackground')
