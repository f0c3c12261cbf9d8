# OAA+++ on the toy dataset: the IAM trained on the OAA++ maps of
# configs/toy/oaa_drop_r18_toy.py.
#   python tools/train.py configs/toy/oaa_drop_r18_toy.py
#   python tools/train.py configs/toy/iam_drop_r18_toy.py
_base_ = './iam_r18_toy.py'
attention_targets = 'work_dirs/oaa_drop_r18_toy/oaa_maps'
train_dataloader = dict(
    dataset=dict(data_prefix=dict(attention_path=attention_targets)))
method = dict(
    name='OAA+++',
    seeds='cams',
    requires=dict(attention_targets=('oaa_drop_r18_toy.py', 'oaa_maps')))
