from .class_group_sampler import ClassGroupSampler
from .strong_mix_sampler import StrongMixSampler

__all__ = ['StrongMixSampler']
__all__ += ['ClassGroupSampler']
