from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import PixelData

from mmwsss.registry import MODELS

DEFAULT_TEST_CFG = dict(
    scales=(1.0, 0.5, 1.5, 2.0),
    flip=True,
    fusion='sum',
    restrict='gt',
    pred_threshold=0.5,
    resize_mode='bilinear')


@MODELS.register_module()
class WSClassifier(BaseModel):
    """Weakly supervised (multi-label, image-level) classifier that produces CAMs.

    ``data_preprocessor -> backbone -> [neck] -> head``. The head (e.g.
    :class:`~mmwsss.models.heads.CAMHead`) returns the class score map ``F``; image
    scores are ``GAP(F)``.

    Modes (MMEngine ``BaseModel``):

    - ``tensor``: the class score map ``F`` (N, K, h, w).
    - ``loss``: the head's losses (needs ``data_sample.gt_label``).
    - ``predict``: per image, ``data_sample.pred_score`` (K,) sigmoid scores (scale 1,
      no flip), ``data_sample.pred_cams`` (``PixelData``, (K, H, W) at the original
      image size) and ``data_sample.pred_cam_labels`` (indices of the classes the
      CAMs are restricted to): CAM inference with test-time augmentation (``test_cfg``):

      * ``scales`` (default 1.0, 0.5, 1.5, 2.0) x horizontal ``flip``; the flipped copy
        of each scale runs in the same batch as the original (flip pairs batched);
      * each pass gives ``ReLU(F)``, resized (bilinear) to the network input size, the
        flipped ones flipped back; passes are fused by ``fusion`` = ``'sum'`` (irn,
        EDAM) or ``'max'``;
      * the fused map is cropped to the valid (unpadded) area, resized to the original
        image size, restricted to the image's classes (``restrict='gt'``: GT labels,
        falling back to predicted ones for images without ``gt_label``; ``'pred'``:
        classes with score > ``pred_threshold`` (top-1 if none); ``'none'``: all) and
        max-normalised per class (OAA Eq. 2 for a single scale). Other classes are 0.

    Training hooks that reuse the training forward pass (OAA's online accumulation,
    :class:`~mmwsss.engine.hooks.OAAHook`) set :attr:`record_train_outputs`; ``loss``
    then keeps the detached score map, the data samples and the input size of the
    last step in :attr:`train_outputs` (no copy, no extra forward, no I/O).

    Args:
        backbone (dict): backbone config (mmwsss, MMSeg, or ``mmpretrain.X``).
        head (dict): head config.
        neck (dict, optional): neck config.
        attention_drop (dict, optional): an input-erasing layer applied to the
            normalised input in ``loss`` only, e.g. ``dict(type='AttentionDrop')``
            (OAA++, [T] Alg. 1).
        data_preprocessor (dict, optional): e.g. ``SegDataPreProcessor``.
        test_cfg (dict, optional): CAM inference options, see above.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 attention_drop: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)
        self.attention_drop = (
            MODELS.build(attention_drop) if attention_drop is not None else None)
        self.record_train_outputs = False
        self.train_outputs: Optional[dict] = None
        self.train_cfg = dict(train_cfg or {})
        cfg = dict(DEFAULT_TEST_CFG)
        cfg.update(dict(test_cfg or {}))
        if cfg['fusion'] not in ('sum', 'max'):
            raise ValueError(f"test_cfg.fusion must be 'sum' or 'max', got "
                             f"{cfg['fusion']!r}")
        if cfg['restrict'] not in ('gt', 'pred', 'none'):
            raise ValueError("test_cfg.restrict must be 'gt', 'pred' or 'none'")
        if not cfg['scales']:
            raise ValueError('test_cfg.scales must not be empty')
        self.test_cfg = cfg

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def extract_feat(self, inputs: torch.Tensor):
        x = self.backbone(inputs)
        if self.neck is not None:
            x = self.neck(x)
        return x

    def score_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.extract_feat(inputs))

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.score_map(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}"; only tensor, loss and '
                           'predict are supported')

    def loss(self, inputs: torch.Tensor, data_samples: list) -> Dict:
        if not data_samples or not all(
                'gt_label' in ds for ds in data_samples):
            raise ValueError(
                'WSClassifier.loss needs data_sample.gt_label (the image-level '
                'labels): use PackWSSSInputs in the pipeline')
        batch_input_shape = tuple(inputs.shape[-2:])
        for ds in data_samples:  # MMSeg's preprocessor does not record it
            ds.set_metainfo(dict(batch_input_shape=batch_input_shape))
        if self.attention_drop is not None:
            inputs = self.attention_drop(inputs, data_samples)
        losses, score_map = self.head.loss(self.extract_feat(inputs), data_samples)
        if self.record_train_outputs:
            self.train_outputs = dict(
                score_map=score_map.detach(),
                data_samples=data_samples,
                input_shape=tuple(inputs.shape[-2:]))
        return losses

    # ---------------------------------------------------------------- predict
    def _tta_cam(self, inputs: torch.Tensor) -> tuple:
        """Fused ReLU(F) at the input resolution, and scale-1 image scores."""
        cfg = self.test_cfg
        n, _, h, w = inputs.shape
        fused, scores = None, None
        for s in cfg['scales']:
            x = inputs
            if s != 1.0:
                size = (max(1, int(round(h * s))), max(1, int(round(w * s))))
                kw = {} if cfg['resize_mode'] == 'nearest' else dict(
                    align_corners=False)
                x = F.interpolate(x, size=size, mode=cfg['resize_mode'], **kw)
            if cfg['flip']:
                x = torch.cat([x, x.flip(-1)], 0)
            f = self.score_map(x)
            if scores is None or s == 1.0:  # scale 1 if listed, else the first
                scores = torch.sigmoid(self.head.pool(f[:n]))
            cam = F.interpolate(
                F.relu(f), size=(h, w), mode='bilinear', align_corners=False)
            if cfg['flip']:
                a, b = cam[:n], cam[n:].flip(-1)
                cam = a + b if cfg['fusion'] == 'sum' else torch.maximum(a, b)
            if fused is None:
                fused = cam
            elif cfg['fusion'] == 'sum':
                fused = fused + cam
            else:
                fused = torch.maximum(fused, cam)
        return fused, scores

    def _classes(self, scores: torch.Tensor, data_sample) -> torch.Tensor:
        cfg = self.test_cfg
        k = scores.shape[0]
        if cfg['restrict'] == 'none':
            return torch.ones(k, dtype=torch.bool, device=scores.device)
        if cfg['restrict'] == 'gt' and data_sample is not None and \
                'gt_label' in data_sample:
            return data_sample.gt_label.to(scores.device) > 0
        keep = scores > cfg['pred_threshold']
        if not keep.any():
            keep[scores.argmax()] = True
        return keep

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[Sequence] = None) -> list:
        from mmwsss.structures import WSSSDataSample
        fused, scores = self._tta_cam(inputs)
        if data_samples is None:
            data_samples = [
                WSSSDataSample(metainfo=dict(
                    ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:]))
                for _ in range(inputs.shape[0])
            ]
        for i, ds in enumerate(data_samples):
            meta = ds.metainfo
            img_h, img_w = meta.get('img_shape', inputs.shape[2:])[:2]
            ori_h, ori_w = meta.get('ori_shape', (img_h, img_w))[:2]
            cam = fused[i:i + 1, :, :img_h, :img_w]
            if meta.get('flip', False):
                direction = meta.get('flip_direction', 'horizontal')
                cam = cam.flip(-1 if direction == 'horizontal' else -2)
            cam = F.interpolate(
                cam, size=(ori_h, ori_w), mode='bilinear',
                align_corners=False)[0]
            keep = self._classes(scores[i], ds)
            cam = cam * keep[:, None, None].to(cam.dtype)
            cam = cam / (cam.amax(dim=(1, 2), keepdim=True) + 1e-5)
            ds.pred_score = scores[i]
            ds.pred_cam_labels = torch.nonzero(keep)[:, 0]
            ds.set_field(PixelData(data=cam), 'pred_cams')
        return list(data_samples)
