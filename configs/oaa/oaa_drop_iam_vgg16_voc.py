# OAA+++ : the integral attention model trained on the OAA++ cumulative maps
# ([T] Tab. 1; the variants table of docs/methods/oaa.md, which defines [T]): OAA+ with
# another attention-target folder.
#   tools/dist_train.sh configs/oaa/oaa_drop_vgg16_voc.py 8
#   tools/dist_train.sh configs/oaa/oaa_drop_iam_vgg16_voc.py 8
_base_ = ['./oaa_iam_vgg16_voc.py']
attention_targets = 'work_dirs/oaa_drop_vgg16_voc/oaa_maps'
train_dataloader = dict(
    dataset=dict(data_prefix=dict(attention_path=attention_targets)))
