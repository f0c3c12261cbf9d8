# OAA on the toy dataset: the toy CAM classifier (configs/toy/cam_r18_toy.py, same
# schedule) plus online attention accumulation. The cumulative maps are exported in
# the CAM format to work_dirs/oaa_r18_toy/oaa_maps after training.
#   python tools/train.py configs/toy/oaa_r18_toy.py
#   python tools/eval_seeds.py work_dirs/oaa_r18_toy/oaa_maps configs/toy/oaa_r18_toy.py
_base_ = './cam_r18_toy.py'
custom_hooks = [
    dict(
        type='OAAHook',
        fusion='max',
        gate='paper',
        start_epoch=1,
        fallback_last_epoch=True,
        export_dir='oaa_maps'),
]
# method comparison: the seeds are the cumulative maps the OAAHook exports to
# <work_dir>/oaa_maps after training
method = dict(name='OAA', seeds='oaa_maps')
# tools/make_pseudo_labels.py with this config: the OAA saliency rule (the toy's
# SaliencyMaps) refined by the irn label CRF with its bilateral range scaled to the
# 128-px toy images (50 px x 128 / 500 = 13 px). Pseudo-label mIoU on the toy CAMs: no CRF
# 68.7, VOC-sized CRF 65.4, this CRF 71.5 (docs/benchmarks.md).
pseudo_label_rule = dict(
    type='SaliencyBackground',
    crf=dict(preset='irn_label', bilateral=dict(sxy=13)))
