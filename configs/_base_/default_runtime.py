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
# always-on checks (a config that sets its own custom_hooks lists them again):
# - WSSSNumClassCheckHook: model.*.num_classes against the dataset's classes before
#   each loop;
# - CheckInvalidLossHook: stops training at the first NaN / inf loss term, before
#   that iteration's checkpoint is saved (off: interval=0). It is a custom hook, not
#   a `default_hooks` key, because the schedules under _base_/schedules/ define
#   `default_hooks` and MMEngine refuses a key defined by two bases of one list
#   ("Duplicate key is not allowed among bases").
custom_hooks = [
    dict(type='WSSSNumClassCheckHook'),
    dict(type='CheckInvalidLossHook', interval=1),
]
tta_model = dict(type='SegTTAModel')
