# OAA on the toy dataset: the toy CAM classifier (configs/toy/cam_r18_toy.py, same
# schedule) plus online attention accumulation. The cumulative maps are exported in
# the CAM format to work_dirs/oaa_r18_toy/oaa_maps after training.
#   python tools/train.py configs/toy/oaa_r18_toy.py
#   python tools/eval_seeds.py work_dirs/oaa_r18_toy/oaa_maps configs/toy/oaa_r18_toy.py
_base_ = './cam_r18_toy.py'
custom_hooks = [
    dict(type='WSSSNumClassCheckHook'),
    dict(
        type='OAAHook',
        fusion='max',
        gate='paper',
        start_epoch=1,
        fallback_last_epoch=True,
        export_dir='oaa_maps'),
]
