# OAA ablation on the toy dataset in ONE training run: the classifier of
# configs/toy/oaa_r18_toy.py with several OAA hooks side by side (the hook never changes
# training without the drop layer, so each hook sees the same visits); each exports
# its cumulative maps to its own folder. Results: docs/benchmarks.md.
#   python tools/train.py configs/toy/oaa_ablation_r18_toy.py
#   for d in work_dirs/oaa_ablation_r18_toy/oaa_*; do
#     python tools/eval_seeds.py $d configs/toy/oaa_ablation_r18_toy.py; done
_base_ = './oaa_r18_toy.py'
custom_hooks = [
    dict(type='OAAHook', start_epoch=1, export_dir='oaa_start1'),
    dict(type='OAAHook', start_epoch=10, export_dir='oaa_start10'),
    dict(type='OAAHook', start_epoch=20, export_dir='oaa_start20'),
    dict(type='OAAHook', start_epoch=30, export_dir='oaa_start30'),
    dict(type='OAAHook', start_epoch=39, export_dir='oaa_start39'),
    dict(type='OAAHook', start_epoch=20, gate='topk', export_dir='oaa_start20_topk'),
    dict(type='OAAHook', start_epoch=20, fusion='avg', export_dir='oaa_start20_avg'),
    dict(type='OAAHook', start_epoch=20, gate='none', export_dir='oaa_start20_nogate'),
]
# not a row of the method comparison (its maps are in several folders): no `method`
method = None
