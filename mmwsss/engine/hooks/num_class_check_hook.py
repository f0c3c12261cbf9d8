from mmengine.hooks import Hook
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from mmwsss.registry import HOOKS
from mmwsss.utils.model_wrappers import unwrap_model


@HOOKS.register_module()
class WSSSNumClassCheckHook(Hook):
    """Check that the model's ``num_classes`` agree with the dataset's classes.

    Checked before training, validation and testing, against the dataset of that
    loop:

    * every MMSeg decode head (``BaseDecodeHead``): ``num_classes`` must equal
      ``len(dataset.metainfo['classes'])`` (background included);
    * every module that sets ``num_classes_excludes_background = True`` (the WSSS
      classification heads, which predict foreground classes only):
      ``num_classes`` must equal ``len(classes) - 1``.

    The error names the config key to change.

    :class:`~mmwsss.engine.runner.WSSSRunner` (``runner_type='WSSSRunner'``, the default
    of ``configs/_base_/default_runtime.py``) adds it to every run; listing it in
    ``custom_hooks`` replaces that one.

    Args:
        enabled (bool): ``False`` switches the check off
            (``custom_hooks = [dict(type='WSSSNumClassCheckHook', enabled=False)]``).
            Defaults to True.
    """
    priority = 'VERY_HIGH'

    def __init__(self, enabled: bool = True) -> None:
        if not isinstance(enabled, bool):
            raise ValueError('WSSSNumClassCheckHook: enabled must be True or False, '
                             f'got {enabled!r}')
        self.enabled = enabled

    def _check(self, runner, dataloader, where: str) -> None:
        if not self.enabled or dataloader is None:
            return
        dataset = getattr(dataloader, 'dataset', None)
        classes = getattr(dataset, 'metainfo', {}).get('classes')
        if classes is None:
            return
        model = unwrap_model(runner.model)
        n = len(classes)
        for name, module in model.named_modules():
            if not hasattr(module, 'num_classes'):
                continue
            if getattr(module, 'num_classes_excludes_background', False):
                expected, kind = n - 1, 'foreground classes'
            elif isinstance(module, BaseDecodeHead):
                # a binary head with out_channels=1 still has num_classes=2
                expected, kind = n, 'classes (background included)'
            else:
                continue
            if module.num_classes != expected:
                key = 'model.' + name + '.num_classes' if name else 'model.num_classes'
                raise ValueError(
                    f'config key `{key}` is {module.num_classes} but the '
                    f'{where} dataset {type(dataset).__name__} has {expected} '
                    f'{kind}: {tuple(classes)}. Set {key}={expected} in the config '
                    '(or use the dataset the model was configured for).')

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_dataloader, 'train')

    def before_val(self, runner) -> None:
        self._check(runner, runner.val_dataloader, 'val')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_dataloader, 'test')
