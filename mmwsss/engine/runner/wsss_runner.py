"""The mmwsss Runner: MMEngine's Runner with the always-on checks of mmwsss."""
import copy
import inspect
from typing import Dict, List, Optional, Sequence, Union

from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmwsss.engine.hooks import CheckInvalidLossHook, WSSSNumClassCheckHook
from mmwsss.registry import HOOKS, RUNNERS

HookCfg = Union[Hook, Dict]

#: the checks every WSSSRunner has, with their default settings (in this order,
#: before the config's own custom hooks)
DEFAULT_CUSTOM_HOOKS = (
    (WSSSNumClassCheckHook, dict()),
    (CheckInvalidLossHook, dict(interval=1)),
)


def _hook_class(hook) -> Optional[type]:
    """The class a hook config (or hook) builds, or None when it cannot be told
    without building it."""
    if isinstance(hook, Hook):
        return type(hook)
    if not isinstance(hook, dict):
        return None
    hook_type = hook.get('type')
    if inspect.isclass(hook_type):
        return hook_type
    if not isinstance(hook_type, str):
        return None
    try:
        cls = HOOKS.get(hook_type)
    except Exception:  # noqa: BLE001  (an unknown scope: not ours)
        cls = None
    if cls is None:  # e.g. a scope whose registry is not imported: by name
        name = hook_type.rsplit('.', 1)[-1]
        cls = next((c for c, _ in DEFAULT_CUSTOM_HOOKS if c.__name__ == name),
                   None)
    return cls


def with_default_custom_hooks(
        custom_hooks: Optional[Sequence[HookCfg]] = None,
        default_hooks: Optional[Dict[str, Optional[HookCfg]]] = None
) -> List[HookCfg]:
    """``custom_hooks`` plus the checks of :data:`DEFAULT_CUSTOM_HOOKS` that it (or
    ``default_hooks``) does not list already, those first.

    A listed hook of that type (or a subclass) replaces the default, with its own
    settings: ``dict(type='CheckInvalidLossHook', interval=0)`` switches the loss
    check off, ``dict(type='WSSSNumClassCheckHook', enabled=False)`` the class check.
    The added entries name their class (not a registry name), so they build in any
    default scope."""
    custom = list(custom_hooks or [])
    listed = [_hook_class(h) for h in custom]
    listed += [_hook_class(h) for h in (default_hooks or {}).values()]
    listed = [c for c in listed if c is not None]
    added = [
        dict(type=cls, **copy.deepcopy(kwargs))
        for cls, kwargs in DEFAULT_CUSTOM_HOOKS
        if not any(issubclass(c, cls) for c in listed)
    ]
    return added + custom


@RUNNERS.register_module()
class WSSSRunner(Runner):
    """MMEngine's ``Runner`` that always has mmwsss's two checks:

    * :class:`~mmwsss.engine.hooks.WSSSNumClassCheckHook` -- ``model.*.num_classes``
      against the classes of the dataset of each loop, before it starts;
    * :class:`~mmwsss.engine.hooks.CheckInvalidLossHook` (``interval=1``) -- training
      stops at the first NaN / inf loss term, before that iteration's checkpoint.

    ``configs/_base_/default_runtime.py`` selects it (``runner_type = 'WSSSRunner'``,
    built by ``tools/train.py`` / ``tools/test.py`` through
    :func:`mmwsss.utils.launch.build_runner`), so a config's ``custom_hooks`` lists
    only its own hooks. A hook of one of these types listed in ``custom_hooks`` (or
    ``default_hooks``) is used instead of the default, with its settings:

    * ``custom_hooks = [dict(type='CheckInvalidLossHook', interval=0)]``: no loss check
      (``interval=N``: every N iterations);
    * ``custom_hooks = [dict(type='WSSSNumClassCheckHook', enabled=False)]``: no class
      check;
    * ``runner_type = 'Runner'``: MMEngine's Runner, neither check.

    Everything else is MMEngine's ``Runner``.
    """

    def register_hooks(
            self,
            default_hooks: Optional[Dict[str, Optional[HookCfg]]] = None,
            custom_hooks: Optional[List[HookCfg]] = None) -> None:
        super().register_hooks(
            default_hooks, with_default_custom_hooks(custom_hooks, default_hooks))

    @staticmethod
    def build_dataloader(dataloader, seed: Optional[int] = None,
                         diff_rank_seed: bool = False):
        """MMEngine's ``build_dataloader`` plus one check: a sampler that composes
        batches itself (one with a ``batch_size``, e.g.
        :class:`~mmwsss.datasets.samplers.StrongMixSampler`) must have the data
        loader's batch size, or its batches would be cut across the loader's."""
        loader = Runner.build_dataloader(
            dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        check_sampler_batch_size(loader)
        return loader

    def build_train_loop(self, loop):
        """MMEngine's ``build_train_loop`` plus one check: a sampler that forms
        groups of images (:class:`~mmwsss.datasets.samplers.ClassGroupSampler`)
        and a model that attends within groups (EDAM's head) must agree on the
        group size."""
        loop = super().build_train_loop(loop)
        check_group_size(self.model, getattr(loop, 'dataloader', None))
        return loop


def check_sampler_batch_size(loader) -> None:
    """Raise if the loader's sampler composes batches of another size than the
    loader's ``batch_size``."""
    sampler = getattr(loader, 'sampler', None)
    size = getattr(sampler, 'batch_size', None)
    if size is None or getattr(loader, 'batch_size', None) is None:
        return
    if int(size) != int(loader.batch_size):
        raise ValueError(
            f'{type(sampler).__name__} composes batches of {size} images '
            f'(sampler.batch_size) but the data loader takes {loader.batch_size} '
            'at a time (train_dataloader.batch_size): set both from one variable, '
            'e.g. batch_size = 8; train_dataloader = dict(batch_size=batch_size, '
            f'sampler=dict(type={type(sampler).__name__!r}, '
            'batch_size=batch_size, ...))')


def check_group_size(model, loader) -> None:
    """Raise if the training sampler's ``group_size`` differs from the model
    head's ``group_size`` (the head forms groups from consecutive samples)."""
    from mmwsss.utils.model_wrappers import unwrap_model
    sampler = getattr(loader, 'sampler', None)
    size = getattr(sampler, 'group_size', None)
    head = getattr(unwrap_model(model), 'head', None)
    head_size = getattr(head, 'group_size', None)
    if size is None or head_size is None or int(size) == int(head_size):
        return
    raise ValueError(
        f'{type(sampler).__name__} forms groups of {size} images '
        f'(train_dataloader.sampler.group_size) but {type(head).__name__} '
        f'attends within groups of {head_size} (model.head.group_size): set both '
        'from one variable, e.g. group_size = 2; model = dict(head=dict('
        'group_size=group_size)); train_dataloader = dict(sampler=dict('
        'group_size=group_size, ...))')
