from .crf_postprocessor import DenseCRFPostProcessor
from .msc_encoder_decoder import MSCEncoderDecoder

__all__ = ['DenseCRFPostProcessor', 'MSCEncoderDecoder']
