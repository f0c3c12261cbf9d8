"""DeepLab-v2 multi-scale-input (MSC) encoder-decoder with optional test-time CRF.

DeepLab v2 (Chen et al., TPAMI 2018, §3.2 "multi-scale inputs" / "MSC") runs the
network on rescaled copies of the input (scales 1, 0.75, 0.5), bilinearly resizes the
logits to the scale-1 logits' size and fuses them with an element-wise max. Training
supervises every scale's logits and the fused ones; inference uses the fused logits.
The reference is kazuto1011/deeplab-pytorch's ``MSC`` wrapper (``libs/models/msc.py``),
which the official OAA code vendors (PengtaoJiang/OAA-PyTorch ``deeplab-pytorch/``) and
the official EDAM code uses (allenwu97/EDAM README); VWL's segmentation code,
rulixiang/deeplab-pytorch, does the same but averages the 4 losses:

.. code:: text

    logits   = base(x)                                        # scale 1
    pyramid  = [base(interpolate(x, scale_factor=p, bilinear)) for p in (0.75, 0.5)]
    fused    = max(logits, *[interpolate(l, size(logits)) for l in pyramid])
    train: loss = sum(CE(l, labels) for l in [logits, *pyramid, fused])
    test:  fused

The test-time dense CRF of the same papers (softmax of the logits upsampled to the
image size -> DenseCRF with the original image) is an optional post-processing step,
``test_cfg.crf``, done by :class:`~mmwsss.models.segmentors.DenseCRFPostProcessor`.
"""
import numbers
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import OptSampleList, SampleList, add_prefix
from torch import Tensor

from mmwsss.registry import MODELS
from .crf_postprocessor import DenseCRFPostProcessor

__all__ = ['MSCEncoderDecoder']

_MSC_LOSS_MODES = ('all', 'mean', 'fused')


@MODELS.register_module()
class MSCEncoderDecoder(EncoderDecoder):
    """:class:`mmseg.models.EncoderDecoder` with DeepLab-v2 MSC and a test-time CRF.

    **MSC** (``msc_scales``, DeepLab v2 TPAMI §3.2, kazuto1011/deeplab-pytorch):
    for each scale ``s`` the input is resized by ``F.interpolate(x, scale_factor=s,
    mode='bilinear', align_corners=False)`` (not at all for ``s == 1``), the backbone
    (+ neck) and the decode head's ``forward`` give that scale's logits, every scale's
    logits are bilinearly resized to the reference logits' size and fused by an
    element-wise max. The reference is scale 1.0 when it is listed, otherwise the
    first scale.

    * Training (:meth:`loss`): the decode head's ``loss_by_feat`` on each scale's
      logits and on the fused logits (labels are handled by the head as usual: the
      logits are upsampled to the label size, whereas kazuto1011 downsamples the
      labels to each logit's size with nearest interpolation), with keys
      ``decode.s{scale}.<name>`` (e.g. ``decode.s1.0.loss_ce``,
      ``decode.s0.75.loss_ce``) and ``decode.fused.<name>``. MMEngine's
      ``parse_losses`` sums every key containing ``'loss'``, so ``msc_loss='all'``
      is kazuto1011's *sum* of the 4 CE losses. ``msc_loss='mean'`` divides every
      loss term by the number of outputs (the *average* of rulixiang/deeplab-pytorch,
      VWL's segmentation code); ``msc_loss='fused'`` only supervises the fused
      logits (keys ``decode.<name>``). Auxiliary heads, if any, are trained on the
      reference scale's features only (keys ``aux.*`` as in EncoderDecoder).
    * Inference (:meth:`encode_decode`): the fused logits, resized to the input size
      by the decode head's ``predict_by_feat`` as in EncoderDecoder. Works with
      ``test_cfg.mode='whole'`` and ``'slide'`` (each crop is MSC'd) and under
      :class:`mmseg.models.SegTTAModel` (each augmented view is MSC'd).
      ``test_cfg.msc_scales`` overrides ``msc_scales`` at test time (e.g. ``(1.0, )``
      for a single-scale ablation).
    * ``tensor`` mode (:meth:`_forward`): the fused logits at the reference size
      (test scales).

    ``msc_scales=None`` or ``(1.0, )`` is exactly EncoderDecoder (same losses, keys and
    outputs).

    **Dense CRF** (``test_cfg.crf``; DeepLab TPAMI §3.3; the test-time CRF of OAA
    (TPAMI 2022, §4) and VWL (IJCV 2022, §4.2)):
    ``None`` (default, no CRF), a preset name (``'deeplab_resnet'``, ``'deeplab_vgg'``,
    ...), a dict of :class:`~mmwsss.pseudo.dense_crf.DenseCRF` arguments (optionally
    ``preset=`` + overrides), or ``dict(type='DenseCRFPostProcessor', crf=...,
    backend_args=...)``. In :meth:`postprocess_result`, after EncoderDecoder's
    post-processing (padding removed, flip undone, logits resized to ``ori_shape``),
    the softmax of each sample's logits and its original image, read from
    ``img_path`` (RGB uint8; the network input is normalised and resized/padded), go
    through the CRF. Then ``pred_sem_seg`` is the argmax of the CRF marginals ``Q`` and
    ``seg_logits`` is ``log(Q)`` (clamped at 1e-8), so that ``softmax(seg_logits) = Q``
    and :class:`SegTTAModel`, which averages the softmax of ``seg_logits``, averages the
    CRF marginals. Note that under SegTTAModel the CRF thus runs on every augmented
    view before the merge, not once on the merged probabilities. Without ``img_path``
    a :class:`KeyError` says so. Only multi-class heads (``out_channels > 1``) are
    supported. ``msc_scales=None`` + ``crf`` is "EncoderDecoder + CRF".

    Args:
        msc_scales (Sequence[float] | None): input scales, default DeepLab-v2's
            ``(1.0, 0.75, 0.5)``. None or ``(1.0, )`` disables MSC.
        msc_loss (str): ``'all'`` (default, sum over the scales and the fused
            logits), ``'mean'`` (their average) or ``'fused'``.
        **kwargs: :class:`mmseg.models.EncoderDecoder` arguments (``backbone``,
            ``decode_head``, ``neck``, ``auxiliary_head``, ``train_cfg``, ``test_cfg``,
            ``data_preprocessor``, ``pretrained``, ``init_cfg``).
    """

    def __init__(self,
                 *args,
                 msc_scales: Optional[Sequence[float]] = (1.0, 0.75, 0.5),
                 msc_loss: str = 'all',
                 **kwargs):
        super().__init__(*args, **kwargs)
        # attribute access (test_cfg.mode) as with configs from files
        for name in ('train_cfg', 'test_cfg'):
            cfg = getattr(self, name)
            if isinstance(cfg, dict) and not isinstance(cfg, ConfigDict):
                setattr(self, name, ConfigDict(cfg))
        self.msc_scales = self._check_scales(msc_scales, 'msc_scales')
        if msc_loss not in _MSC_LOSS_MODES:
            raise ValueError(f'MSCEncoderDecoder: msc_loss must be one of '
                             f'{_MSC_LOSS_MODES}, got {msc_loss!r}')
        self.msc_loss = msc_loss
        self._crf_cache = None  # (cfg repr, DenseCRFPostProcessor | None)
        # validate test_cfg.crf / test_cfg.msc_scales early
        self._get_crf_postprocessor()
        self._test_scales()

    # ------------------------------------------------------------------ config
    @staticmethod
    def _check_scales(scales, name) -> Optional[Tuple[float, ...]]:
        if scales is None:
            return None
        if isinstance(scales, numbers.Real):
            scales = (scales, )
        scales = tuple(scales)
        if len(scales) == 0:
            raise ValueError(f'MSCEncoderDecoder: {name} must be None or non-empty')
        for s in scales:
            if (not isinstance(s, numbers.Real) or isinstance(s, bool)
                    or not s > 0 or s != s or s == float('inf')):
                raise ValueError(f'MSCEncoderDecoder: {name} must be positive '
                                 f'numbers, got {scales!r}')
        scales = tuple(float(s) for s in scales)
        if len(set(scales)) != len(scales):
            raise ValueError(f'MSCEncoderDecoder: {name} has duplicates: {scales}')
        if scales == (1.0, ):
            return None
        return scales

    @property
    def with_msc(self) -> bool:
        """Whether training uses multi-scale inputs."""
        return self.msc_scales is not None

    def _test_scales(self) -> Optional[Tuple[float, ...]]:
        test_cfg = self.test_cfg if self.test_cfg is not None else {}
        if 'msc_scales' in test_cfg:
            return self._check_scales(test_cfg['msc_scales'], 'test_cfg.msc_scales')
        return self.msc_scales

    @staticmethod
    def _ref_index(scales: Tuple[float, ...]) -> int:
        return scales.index(1.0) if 1.0 in scales else 0

    # --------------------------------------------------------------------- MSC
    def _scale_inputs(self, inputs: Tensor, scale: float) -> Tensor:
        if scale == 1.0:
            return inputs
        # kazuto1011 MSC: F.interpolate(x, scale_factor=p, mode="bilinear",
        # align_corners=False)
        return F.interpolate(
            inputs, scale_factor=scale, mode='bilinear', align_corners=False)

    def _msc_forward(self, inputs: Tensor, scales: Tuple[float, ...]):
        """Per-scale logits (each at its own size), the fused logits (at the reference
        size) and the reference scale's features."""
        ref = self._ref_index(scales)
        logits, ref_feats = [], None
        for i, s in enumerate(scales):
            x = self.extract_feat(self._scale_inputs(inputs, s))
            if i == ref:
                ref_feats = x
            logits.append(self.decode_head.forward(x))
        size = logits[ref].shape[2:]
        aligned = [
            l if l.shape[2:] == size else F.interpolate(
                l, size=size, mode='bilinear', align_corners=False)
            for l in logits
        ]
        fused = torch.stack(aligned, dim=0).max(dim=0)[0]
        return logits, fused, ref_feats

    # ---------------------------------------------------------------- training
    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Losses of every scale's logits and of the max-fused logits (see class doc).

        Args:
            inputs (Tensor): (N, 3, H, W) input images.
            data_samples (list[SegDataSample]): samples with ``gt_sem_seg``.

        Returns:
            dict[str, Tensor]: loss components (+ ``acc_seg`` per output).
        """
        if not self.with_msc:
            return super().loss(inputs, data_samples)
        scales = self.msc_scales
        logits, fused, ref_feats = self._msc_forward(inputs, scales)
        losses = dict()
        if self.msc_loss == 'fused':
            losses.update(
                add_prefix(
                    self.decode_head.loss_by_feat(fused, data_samples), 'decode'))
        else:
            weight = 1.0 / (len(scales) + 1) if self.msc_loss == 'mean' else 1.0
            outputs = [(f's{s}', l) for s, l in zip(scales, logits)]
            outputs.append(('fused', fused))
            for name, seg_logits in outputs:
                loss = self.decode_head.loss_by_feat(seg_logits, data_samples)
                if weight != 1.0:
                    loss = {
                        k: v * weight if 'loss' in k else v
                        for k, v in loss.items()
                    }
                losses.update(add_prefix(loss, f'decode.{name}'))
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(ref_feats, data_samples))
        return losses

    # --------------------------------------------------------------- inference
    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Max-fused multi-scale logits resized to the input size (or EncoderDecoder's
        single-scale logits without MSC)."""
        scales = self._test_scales()
        if scales is None:
            return super().encode_decode(inputs, batch_img_metas)
        _, fused, _ = self._msc_forward(inputs, scales)
        return self.decode_head.predict_by_feat(fused, batch_img_metas)

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """Raw logits: EncoderDecoder's, or the max-fused ones at the reference
        size with MSC."""
        scales = self._test_scales()
        if scales is None:
            return super()._forward(inputs, data_samples)
        return self._msc_forward(inputs, scales)[1]

    # --------------------------------------------------------------------- CRF
    def _get_crf_postprocessor(self) -> Optional[DenseCRFPostProcessor]:
        """The CRF post-processor of ``test_cfg.crf`` (rebuilt when it changes)."""
        cfg = self.test_cfg.get('crf', None) if self.test_cfg is not None else None
        key = repr(cfg)
        if self._crf_cache is not None and self._crf_cache[0] == key:
            return self._crf_cache[1]
        proc = DenseCRFPostProcessor.build(cfg)
        self._crf_cache = (key, proc)
        return proc

    def postprocess_result(self,
                           seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """EncoderDecoder's post-processing, then the optional dense CRF.

        With ``test_cfg.crf`` set, each sample's ``pred_sem_seg`` becomes the argmax of
        the CRF marginals ``Q`` and its ``seg_logits`` ``log(Q)`` (see class doc).
        """
        data_samples = super().postprocess_result(seg_logits, data_samples)
        crf = self._get_crf_postprocessor()
        if crf is None:
            return data_samples
        if self.out_channels == 1:
            raise ValueError('MSCEncoderDecoder: test_cfg.crf needs a multi-class '
                             'decode head (out_channels > 1)')
        for data_sample in data_samples:
            logits = data_sample.seg_logits.data
            labels, probs = crf.process_sample(data_sample, logits)
            data_sample.set_data({
                'seg_logits': PixelData(data=probs.clamp_min(1e-8).log()),
                'pred_sem_seg': PixelData(data=labels.unsqueeze(0)),
            })
        return data_samples
