from .wsss_runner import WSSSRunner, with_default_custom_hooks

__all__ = ['WSSSRunner', 'with_default_custom_hooks']
