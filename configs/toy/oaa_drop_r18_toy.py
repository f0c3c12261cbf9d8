# OAA++ on the toy dataset: configs/toy/oaa_r18_toy.py plus the attention drop layer
# (beta = 0.5, delta = 0.6, [T] Alg. 1; references: docs/methods/oaa.md).
#   python tools/train.py configs/toy/oaa_drop_r18_toy.py
#   python tools/eval_seeds.py work_dirs/oaa_drop_r18_toy/oaa_maps configs/toy/oaa_drop_r18_toy.py
_base_ = './oaa_r18_toy.py'
# a batch augment of the data preprocessor: after normalisation and padding, in
# training only
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='AttentionDrop', drop_prob=0.5, threshold=0.6)
    ]))
method = dict(name='OAA++', seeds='oaa_maps')
