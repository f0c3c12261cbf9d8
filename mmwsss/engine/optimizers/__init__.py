from .lr_mult_constructor import LRMultOptimWrapperConstructor

__all__ = ['LRMultOptimWrapperConstructor']
