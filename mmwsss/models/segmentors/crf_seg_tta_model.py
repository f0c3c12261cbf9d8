from typing import List, Optional, Union

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors import SegTTAModel

from mmwsss.registry import MODELS
from .crf_postprocessor import DenseCRFPostProcessor


@MODELS.register_module()
class CRFSegTTAModel(SegTTAModel):
    """MMSeg's test-time augmentation (multi-scale + flip, softmax averaged over the
    views) followed by **one** dense CRF on the averaged probabilities.

    The evaluation protocol of the WSSS papers, "multi-scale test" then DenseCRF (OAA,
    Jiang et al., TPAMI 2022, §4). The papers do not give the scales; the configs use
    (0.5, 0.75, 1.0, 1.25, 1.5) + flip with the softmax averaged (docs/segmentation.md,
    section 'Test protocol and initialisation'). Setting
    ``model.test_cfg.crf`` on the wrapped :class:`MSCEncoderDecoder` instead would run a
    CRF on every view (slower, and the views' CRF marginals are averaged). The wrapped
    module's own ``test_cfg.crf`` must therefore be off (it is switched off here).

    Config (``tools/test.py CONFIG CKPT --tta``)::

        tta_model = dict(type='CRFSegTTAModel', crf='deeplab_resnet')
        tta_pipeline = [...]  # MMSeg's TestTimeAug over scales and flips

    Args:
        module (dict | nn.Module): the segmentor.
        crf: CRF of :class:`DenseCRFPostProcessor` (preset name, dict or processor);
            ``None`` = plain :class:`SegTTAModel`.
    """

    def __init__(self, module, crf: Optional[Union[str, dict]] = 'deeplab_resnet',
                 **kwargs):
        super().__init__(module=module, **kwargs)
        test_cfg = getattr(self.module, 'test_cfg', None)
        if test_cfg is not None and test_cfg.get('crf') is not None:
            test_cfg['crf'] = None  # one CRF after the merge, not one per view
        self.crf = DenseCRFPostProcessor.build(crf)

    def merge_preds(self, data_samples_list: List) -> List:
        predictions = []
        for data_samples in data_samples_list:
            probs = None
            for ds in data_samples:
                p = ds.seg_logits.data.softmax(dim=0)
                probs = p if probs is None else probs + p
            probs = probs / len(data_samples)
            out = data_samples[0]
            if self.crf is not None:
                labels, probs = self.crf.process_sample(
                    out, torch.log(probs.clamp_min(1e-8)))
            else:
                labels = probs.argmax(dim=0)
            out.set_data({
                'pred_sem_seg': PixelData(data=labels[None] if labels.dim() == 2
                                          else labels),
                'seg_logits': PixelData(data=torch.log(probs.clamp_min(1e-8)))
            })
            predictions.append(out)
        return predictions
