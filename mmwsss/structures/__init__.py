from .train_step import WSTrainStep
from .wsss_data_sample import WSSSDataSample

__all__ = ['WSSSDataSample', 'WSTrainStep']
