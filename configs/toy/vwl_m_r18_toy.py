# VWL-M on the toy dataset (Ru et al., IJCV 2023; docs/methods/vwl.md): VWL-L's toy
# config (configs/toy/vwl_l_r18_toy.py) with the memory-bank codebook: a buffer of
# K = 64 words moved towards the per-word means of each step's features (Eqs. 6-7),
# the sums and counts all-reduced over the processes, no word-to-image classifier and
# no decorrelation loss (Eq. 12). The bank is part of the model's state (every
# checkpoint holds it; --resume restores it).
# rho = 4e-3: the paper's 1e-3 over VOC's 3,966 iterations leaves 0.999^3966 = 1.9 %
# of the initial bank; the toy's 1,000 iterations leave the same with
# 1 - 0.999^3.966 = 0.004.
#   python tools/train.py configs/toy/vwl_m_r18_toy.py
#   python tools/export_cams.py configs/toy/vwl_m_r18_toy.py \
#       work_dirs/vwl_m_r18_toy/epoch_40.pth --out work_dirs/vwl_m_r18_toy/cams
#   python tools/eval_seeds.py work_dirs/vwl_m_r18_toy/cams configs/toy/vwl_m_r18_toy.py
_base_ = './vwl_l_r18_toy.py'
model = dict(
    head=dict(
        codebook=dict(
            _delete_=True,
            type='MemoryBankCodebook',
            num_words={{_base_.num_words}},
            rho=4e-3,
            init='random'),
        decov_loss=None))
method = dict(name='VWL-M', seeds='cams')
