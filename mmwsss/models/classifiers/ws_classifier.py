from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import PixelData

from mmwsss.models.heads.base_cam_head import BaseCAMHead
from mmwsss.models.utils import bn_eval as bn_eval_mode
from mmwsss.models.utils import detached_call, normalize_cams
from mmwsss.registry import MODELS
from mmwsss.structures.train_step import WSTrainStep

DEFAULT_TEST_CFG = dict(
    scales=(1.0, 0.5, 1.5, 2.0),
    flip=True,
    fusion='sum',
    flip_fusion=None,
    restrict='gt',
    pred_threshold=0.5,
    resize_mode='bilinear')


@MODELS.register_module()
class WSClassifier(BaseModel):
    """Weakly supervised (multi-label, image-level) classifier that produces CAMs.

    ``data_preprocessor -> backbone -> [neck] -> head``. The head (a
    :class:`~mmwsss.models.heads.BaseCAMHead`, e.g.
    :class:`~mmwsss.models.heads.CAMHead`) owns what a class map is, what the image
    scores are and what is trained (``docs/extending.md``); the classifier does the
    generic parts below.

    Modes (MMEngine ``BaseModel``):

    - ``tensor``: the head's outputs (the class score map ``F`` (N, K, h, w) for
      :class:`~mmwsss.models.heads.CAMHead`).
    - ``loss``: the head's losses (needs ``data_sample.gt_label``). A head that sets
      ``loss_needs_inputs`` (GAIN's attention mining) also gets the input batch
      and :meth:`extract_feat_stream` to run a second stream within the same
      forward pass.
    - ``predict``: per image, ``data_sample.pred_score`` (K,) sigmoid scores (scale 1,
      no flip), ``data_sample.pred_cams`` (``PixelData``, (K, H, W) at the original
      image size) and ``data_sample.pred_cam_labels`` (indices of the classes the
      CAMs are restricted to): CAM inference with test-time augmentation (``test_cfg``):

      * ``scales`` (default 1.0, 0.5, 1.5, 2.0) x horizontal ``flip``; the flipped copy
        of each scale runs in the same batch as the original (flip pairs batched);
      * each pass gives the head's class maps
        (:meth:`~mmwsss.models.heads.BaseCAMHead.predict_maps`; ``ReLU(F)`` for the
        CAM head, computed with gradients enabled when the head sets
        ``cam_requires_grad``, e.g. Grad-CAM), resized (bilinear) to the network
        input size, the flipped ones flipped back; passes are fused by ``fusion`` =
        ``'sum'`` (irn, EDAM) or ``'max'``; ``flip_fusion`` (default: ``fusion``)
        fuses a scale's flip pair first (VWL: ``'max'`` over the flip pair,
        ``'sum'`` over the scales);
      * the fused map is cropped to the valid (unpadded) area, resized to the original
        image size, restricted to the image's classes (``restrict='gt'``: GT labels,
        falling back to predicted ones for images without ``gt_label``; ``'pred'``:
        classes with score > ``pred_threshold`` (top-1 if none); ``'none'``: all) and
        max-normalised per class (:func:`~mmwsss.models.utils.normalize_cams`, OAA
        Eq. 2 for a single scale). Other classes are 0. ``pred_score`` is the sigmoid
        of the head's image logits.

    Training-step protocol: hooks that reuse the training forward pass (OAA's online
    accumulation, :class:`~mmwsss.engine.hooks.OAAHook`) call
    :func:`enable_train_step_record`; ``loss`` then records each step in
    :attr:`last_train_step` (a :class:`~mmwsss.structures.WSTrainStep`: detached
    class maps and image logits of the head, the data samples, the input size; no
    copy of the input, no extra forward, no I/O). Input-side steps (padding,
    ``batch_input_shape``, OAA++'s attention drop) belong to the data preprocessor
    (:class:`~mmwsss.models.WSSSDataPreProcessor`).

    Args:
        backbone (dict): backbone config (mmwsss, MMSeg, or ``mmpretrain.X``).
        head (dict): head config.
        neck (dict, optional): neck config.
        data_preprocessor (dict, optional): e.g. ``WSSSDataPreProcessor``.
        test_cfg (dict, optional): CAM inference options, see above.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 attention_drop: Optional[dict] = None):
        if attention_drop is not None:
            raise ValueError(
                'WSClassifier: `model.attention_drop` moved to the data '
                'preprocessor: set model.data_preprocessor = dict(type='
                "'WSSSDataPreProcessor', ..., batch_augments=[dict(type="
                "'AttentionDrop', ...)]) (docs/methods/oaa.md)")
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)
        if not isinstance(self.head, BaseCAMHead):
            raise TypeError(
                f'WSClassifier: the head {type(self.head).__name__} is not a '
                'BaseCAMHead (mmwsss.models.heads); see docs/extending.md')
        self.record_train_step = False
        self.last_train_step: Optional[WSTrainStep] = None
        self._train_steps = 0
        self.train_cfg = dict(train_cfg or {})
        cfg = dict(DEFAULT_TEST_CFG)
        cfg.update(dict(test_cfg or {}))
        if cfg['flip_fusion'] is None:
            cfg['flip_fusion'] = cfg['fusion']
        for key in ('fusion', 'flip_fusion'):
            if cfg[key] not in ('sum', 'max'):
                raise ValueError(f"test_cfg.{key} must be 'sum' or 'max', got "
                                 f'{cfg[key]!r}')
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

    def extract_feat_stream(self,
                            x: torch.Tensor,
                            bn_eval: bool = False,
                            detach_weights: bool = False):
        """Backbone (+ neck) features of a second stream over modified inputs
        (e.g. GAIN's erased images), inside the training forward pass.

        Args:
            x (Tensor): (N', C, H, W) input batch.
            bn_eval (bool): run every batch-norm layer of the backbone and neck in
                eval mode for this call only (the layers' previous modes are
                restored afterwards, also on an exception): the stream's images do
                not update the running statistics and are normalised with them.
            detach_weights (bool): run with detached parameters
                (``torch.func.functional_call``): the features depend
                differentiably on ``x`` but no gradient reaches the weights through
                this call. ``requires_grad`` is never toggled (DDP-safe) and no
                ``.grad`` is written.
        """
        with bn_eval_mode(self.backbone, self.neck) if bn_eval else \
                nullcontext():
            if not detach_weights:
                return self.extract_feat(x)
            x = detached_call(self.backbone, x)
            if self.neck is not None:
                x = detached_call(self.neck, x)
            return x

    def score_map(self, inputs: torch.Tensor):
        """The head's outputs (``tensor`` mode)."""
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
        feats = self.extract_feat(inputs)
        if getattr(self.head, 'loss_needs_inputs', False):
            losses, outputs = self.head.loss(
                feats, data_samples, inputs=inputs,
                extract_feat=self.extract_feat_stream)
        else:
            losses, outputs = self.head.loss(feats, data_samples)
        if self.record_train_step:
            self._train_steps += 1
            head = self.head
            with torch.no_grad():
                self.last_train_step = WSTrainStep(
                    index=self._train_steps,
                    class_maps=head.class_maps(outputs).detach(),
                    logits=head.image_logits(outputs).detach(),
                    data_samples=data_samples,
                    input_shape=tuple(int(v) for v in inputs.shape[-2:]),
                    extras={
                        k: v.detach()
                        for k, v in head.train_step_extras(outputs).items()
                    })
        return losses

    # ---------------------------------------------------------------- predict
    def _head_maps(self, x: torch.Tensor, data_samples,
                   need_logits: bool = True) -> tuple:
        """(class maps, image logits) of one inference pass of the head; with
        ``need_logits=False`` (a pass whose scores are not kept) the head's
        :meth:`~mmwsss.models.heads.BaseCAMHead.predict_class_maps` and
        ``(maps, None)``."""
        head = self.head

        def run(feats):
            if need_logits:
                return head.predict_maps(feats, data_samples)
            return head.predict_class_maps(feats, data_samples), None

        if not getattr(head, 'cam_requires_grad', False):
            return run(self.extract_feat(x))
        # Grad-CAM-like heads: gradients of the head only, w.r.t. the features
        with torch.no_grad():
            feats = self.extract_feat(x)
        if isinstance(feats, (list, tuple)):
            feats = type(feats)(f.detach().requires_grad_() for f in feats)
        else:
            feats = feats.detach().requires_grad_()
        with torch.enable_grad():
            maps, logits = run(feats)
        return maps.detach(), None if logits is None else logits.detach()

    def _tta_cam(self, inputs: torch.Tensor,
                 data_samples: Optional[Sequence] = None) -> tuple:
        """Fused class maps at the input resolution, and scale-1 image scores."""
        cfg = self.test_cfg
        n, _, h, w = inputs.shape
        fused, scores = None, None
        samples = data_samples
        if cfg['flip'] and data_samples is not None:
            samples = list(data_samples) * 2
        scales = list(cfg['scales'])
        # the image scores come from scale 1 if listed, else from the first scale
        score_scale = scales.index(1.0) if 1.0 in scales else 0
        for i, s in enumerate(scales):
            x = inputs
            if s != 1.0:
                size = (max(1, int(round(h * s))), max(1, int(round(w * s))))
                kw = {} if cfg['resize_mode'] == 'nearest' else dict(
                    align_corners=False)
                x = F.interpolate(x, size=size, mode=cfg['resize_mode'], **kw)
            if cfg['flip']:
                x = torch.cat([x, x.flip(-1)], 0)
            maps, logits = self._head_maps(x, samples, i == score_scale)
            if i == score_scale:
                scores = torch.sigmoid(logits[:n])
            cam = F.interpolate(
                maps, size=(h, w), mode='bilinear', align_corners=False)
            if cfg['flip']:
                a, b = cam[:n], cam[n:].flip(-1)
                cam = a + b if cfg['flip_fusion'] == 'sum' else \
                    torch.maximum(a, b)
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
        fused, scores = self._tta_cam(inputs, data_samples)
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
            cam = normalize_cams(cam)
            ds.pred_score = scores[i]
            ds.pred_cam_labels = torch.nonzero(keep)[:, 0]
            ds.set_field(PixelData(data=cam), 'pred_cams')
        return list(data_samples)


def enable_train_step_record(model, hook: str = 'this hook') -> WSClassifier:
    """Switch on the training-step record of a (wrapped) WSSS classifier and return
    the classifier (``docs/extending.md``, "Training-step protocol").

    Raises:
        TypeError: the model does not record training steps (not a
            :class:`WSClassifier`).
    """
    from mmwsss.utils.model_wrappers import unwrap_model
    m = unwrap_model(model)
    if not hasattr(m, 'record_train_step'):
        raise TypeError(
            f'{hook} needs a model that records its training steps (mmwsss '
            f'WSClassifier, docs/extending.md), got {type(m).__name__}')
    m.record_train_step = True
    return m
