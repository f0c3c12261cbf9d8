from .num_class_check_hook import WSSSNumClassCheckHook

__all__ = ['WSSSNumClassCheckHook']
