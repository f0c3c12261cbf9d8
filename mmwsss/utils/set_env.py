import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all modules of mmwsss (and, through the parent registries, MMSeg's)
    into the registries, and optionally make ``'mmwsss'`` the default scope.

    Args:
        init_default_scope (bool): set the default scope to ``'mmwsss'`` so that
            ``type='X'`` resolves mmwsss first, then MMSeg, then MMEngine.
    """
    import mmseg.utils  # noqa: F401
    import mmseg.visualization  # noqa: F401
    import mmwsss.datasets  # noqa: F401,F403
    import mmwsss.engine  # noqa: F401,F403
    import mmwsss.evaluation  # noqa: F401,F403
    import mmwsss.models  # noqa: F401,F403
    from mmseg.utils import register_all_modules as mmseg_register
    mmseg_register(init_default_scope=False)

    if not init_default_scope:
        return
    never_created = (DefaultScope.get_current_instance() is None
                     or not DefaultScope.check_instance_created('mmwsss'))
    if never_created:
        DefaultScope.get_instance('mmwsss', scope_name='mmwsss')
        return
    current = DefaultScope.get_current_instance()
    if current.scope_name != 'mmwsss':
        warnings.warn('The current default scope '
                      f'"{current.scope_name}" is not "mmwsss", '
                      '`register_all_modules` will force the current '
                      'default scope to be "mmwsss".')
        name = f'mmwsss-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='mmwsss')
