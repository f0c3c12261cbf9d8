# Fully supervised upper bound on the toy dataset: a small MMSeg segmentor trained on
# the toy GT masks. CPU, a few minutes:
#   python tools/train.py configs/toy/supervised_toy.py
#   tools/dist_train.sh configs/toy/supervised_toy.py 2
_base_ = [
    '../_base_/models/fcn_r18_tiny.py', '../_base_/datasets/toy.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_toy.py'
]
randomness = dict(seed=0)
