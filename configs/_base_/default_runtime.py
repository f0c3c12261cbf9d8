default_scope = 'mmwsss'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# mmwsss's Runner (mmwsss/engine/runner/wsss_runner.py): MMEngine's Runner plus two
# always-on checks, added unless custom_hooks lists a hook of that type (a config's
# custom_hooks lists only its own hooks):
# - WSSSNumClassCheckHook: model.*.num_classes against the dataset's classes before
#   each loop (off: custom_hooks = [dict(type='WSSSNumClassCheckHook', enabled=False)]);
# - CheckInvalidLossHook(interval=1): stops training at the first NaN / inf loss term,
#   before that iteration's checkpoint is saved
#   (off: custom_hooks = [dict(type='CheckInvalidLossHook', interval=0)]).
# runner_type = 'Runner' gives MMEngine's Runner without them.
runner_type = 'WSSSRunner'
custom_hooks = []  # so that `_base_.custom_hooks + [...]` works in any config
tta_model = dict(type='SegTTAModel')
