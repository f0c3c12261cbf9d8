from typing import Any, Dict, Optional, Sequence

import torch.nn as nn
from mmseg.models.data_preprocessor import SegDataPreProcessor

from mmwsss.registry import MODELS


@MODELS.register_module()
class WSSSDataPreProcessor(SegDataPreProcessor):
    """MMSeg's ``SegDataPreProcessor`` with the input-side steps of WSSS methods.

    On top of the parent's normalisation, BGR->RGB and bottom/right padding:

    * every data sample gets ``batch_input_shape`` (the (H, W) of the padded network
      input) in training and inference, which heads need to place per-image targets
      in the padded batch (MMSeg records it only in some code paths);
    * ``batch_augments``: a list of batch-level augment **configs**, built from the
      registry and applied in order in training only, after padding, each called as
      ``inputs, data_samples = augment(inputs, data_samples)``. OAA++'s attention drop
      is one (:class:`~mmwsss.models.layers.AttentionDrop`, OAA TPAMI Alg. 1); an
      augment erases input regions with :func:`~mmwsss.models.utils.erase_inputs`,
      which knows the padding.

    Args:
        batch_augments (list[dict], optional): batch augment configs.
        **kwargs: ``SegDataPreProcessor`` arguments (``mean``, ``std``,
            ``bgr_to_rgb``, ``pad_val``, ``seg_pad_val``, ``size``,
            ``size_divisor``, ``test_cfg``).
    """

    def __init__(self, batch_augments: Optional[Sequence[dict]] = None, **kwargs):
        super().__init__(batch_augments=None, **kwargs)
        augments = [
            MODELS.build(cfg) if isinstance(cfg, dict) else cfg
            for cfg in batch_augments or []
        ]
        for cfg, aug in zip(batch_augments or [], augments):
            if not isinstance(aug, nn.Module):
                raise TypeError(f'batch augment {cfg!r} is not an nn.Module '
                                '(it must follow train() / eval())')
        # a ModuleList: augments move with the model and follow train()/eval()
        self.augments = nn.ModuleList(augments)

    def find_augment(self, cls) -> Optional[Any]:
        """The first batch augment that is an instance of ``cls``, or None."""
        for aug in self.augments:
            if isinstance(aug, cls):
                return aug
        return None

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        out = super().forward(data, training=training)
        inputs, data_samples = out['inputs'], out['data_samples']
        if data_samples is not None:
            shape = tuple(int(v) for v in inputs.shape[-2:])
            for ds in data_samples:
                ds.set_metainfo(dict(batch_input_shape=shape))
            if training:
                for aug in self.augments:
                    inputs, data_samples = aug(inputs, data_samples)
        return dict(inputs=inputs, data_samples=data_samples)
