from .strong_mix_sampler import StrongMixSampler

__all__ = ['StrongMixSampler']
