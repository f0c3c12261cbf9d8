from .crf_postprocessor import DenseCRFPostProcessor
from .crf_seg_tta_model import CRFSegTTAModel
from .msc_encoder_decoder import MSCEncoderDecoder

__all__ = ['DenseCRFPostProcessor', 'MSCEncoderDecoder', 'CRFSegTTAModel']
