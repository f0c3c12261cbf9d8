"""GAIN: Grad-CAM attention trained inside the graph.

Li, Wu, Peng, Ernst, Fu, "Tell Me Where to Look: Guided Attention Inference
Network", CVPR 2018; extended version "Guided Attention Inference Network", TPAMI
2020 (equations numbered as there; the box loss, Eq. 9, is the TPAMI one).
"""
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub, print_log
from torch.nn.modules.batchnorm import _BatchNorm

from mmwsss.models.losses.attention_mining_loss import (AM_SCORES,
                                                        AttentionMiningLoss)
from mmwsss.models.losses.box_attention_loss import BoxAttentionLoss
from mmwsss.models.losses.pixel_attention_loss import PixelAttentionLoss
from mmwsss.models.utils import (bn_eval, detached_call, erase_inputs,
                                 gap_linear_grad_cam, grad_cam,
                                 minmax_normalize, soft_mask)
from mmwsss.registry import MODELS
from .base_cam_head import BaseCAMHead

ATTENTION_MODES = ('auto', 'closed_form', 'autograd')
AM_GRADS = ('all', 'mask_only')
MINING_BN = ('eval', 'train')
NORMALIZATIONS = ('minmax', 'max')
EXT_KINDS = ('pixel', 'box')
IGNORE_INDEX = 255


def _check_choice(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ValueError(f'GAINHead: {name} must be one of {tuple(allowed)}, '
                         f'got {value!r}')


@MODELS.register_module()
class GAINHead(BaseCAMHead):
    """Guided Attention Inference Network head (GAIN, GAIN^p_ext, GAIN^b_ext).

    Wraps an inner classification head (``cls_head``, any
    :class:`BaseCAMHead` whose image logits depend on its input features, e.g.
    :class:`~mmwsss.models.heads.CAMHead`) and trains its Grad-CAM attention
    (Li et al., CVPR 2018, §3; TPAMI 2020, §3). In one training forward pass:

    1. **Classification stream** ``S_cl``: the inner head's outputs and loss
       (``loss_cls``, the multi-label soft margin loss of the paper, Eq. 6's
       ``L_cl``).
    2. **Attention** of every (image, ground-truth class) pair: Grad-CAM
       ``A^c = ReLU(sum_k w^c_k f_k)``, ``w^c = GAP(ds^c / df)`` (Eqs. 1-2) with
       ``s^c`` the logit and ``f`` the features entering the inner head's last,
       class-wise layer (:meth:`BaseCAMHead.pre_logits`: for ``CAMHead`` the
       output of its extra convs, for a plain head its input; the paper: the last
       convolutional layer). ``attention='closed_form'`` uses the exact closed form
       of a GAP + 1x1-conv head, ``A^c = ReLU(W_c . f) / (h w)``
       (:func:`~mmwsss.models.utils.gap_linear_grad_cam`); ``'autograd'`` computes
       Eq. 1 with ``torch.autograd.grad`` for any head
       (:func:`~mmwsss.models.utils.grad_cam`; no ``.grad`` is written, no second
       backward); ``'auto'`` picks the closed form when the inner head has one
       (:meth:`BaseCAMHead.linear_classifier`). Both give the same maps and
       gradients.
    3. **Soft mask** ``T(A^c) = sigmoid(omega (Â^c - sigma))`` (Eq. 4), where
       ``Â^c`` is ``A^c`` upsampled bilinearly to the padded input and normalised
       per map over the image's unpadded area (``img_shape``) only.
    4. **Attention-mining stream** ``S_am``: the masked images
       ``I*c = I - T(A^c) . I`` (Eq. 3; :func:`~mmwsss.models.utils.erase_inputs`,
       fill 0 = the mean colour of the normalised input, padding untouched), one
       per pair, through the same backbone and head
       (``extract_feat_stream`` of :class:`~mmwsss.models.WSClassifier`), and
       ``loss_am = alpha L_am``, ``L_am = 1/n sum_c s^c(I*c)`` per image, averaged
       over the images with at least one label (Eqs. 5-6;
       :class:`~mmwsss.models.losses.AttentionMiningLoss`). Images without labels
       are skipped.
    5. **Extra supervision** (GAIN_ext), on the images that carry it and only for
       the kinds listed in ``ext_supervision``:
       ``loss_ext_pixel = ext_weight L_e`` (Eqs. 7-8,
       :class:`~mmwsss.models.losses.PixelAttentionLoss`) against ``gt_sem_seg``
       (``H^c = [label == c + 1]``, 255 ignored) and
       ``loss_ext_box = ext_weight L_bbox`` (Eqs. 9-10,
       :class:`~mmwsss.models.losses.BoxAttentionLoss`) against ``gt_box_mask``
       (``B^c``) and ``gt_saliency`` (``S``), both on ``Â^c`` at the input
       resolution (the paper resizes ``B^c`` and ``S`` to the attention instead;
       comparing where ``Â`` already lives avoids resizing label maps), per-pixel
       means, ``1/n`` over the image's classes, mean over the images.
       ``am_mask_mean``, the mean of ``T`` over the pairs' unpadded pixels, is
       logged (not a loss; near 1: the attention covers the whole image, near 0:
       ``L_am`` has nothing to erase).

    Hooks (the training-step protocol) see :meth:`class_maps` = the step's
    attention ``A^c`` (N, K, h, w) at the feature resolution (zeros for classes
    not in the image; detached), :meth:`image_logits` = the inner head's, and
    ``train_step_extras`` ``mask_mean`` (N,) (per image, 0 without labels).

    Inference (:meth:`predict_maps`, CAM export): Grad-CAM of every class,
    first order, with the classifier's test-time augmentation and max
    normalisation; with the autograd form the head sets ``cam_requires_grad``.

    Paper values and re-implementation choices (the paper is silent where not
    stated):

    Args:
        cls_head (dict | BaseCAMHead): the inner head's config (or module);
            ``num_classes`` is taken from it.
        attention (str): ``'auto'`` (default), ``'closed_form'`` (an error when
            the inner head has no GAP + 1x1-conv form) or ``'autograd'``.
        sigma (float): threshold of Eq. 4; not given in the paper, 0.5 as most
            public re-implementations.
        omega (float): scale of Eq. 4; not given in the paper, 10 as most public
            re-implementations (``T(0) = 0.0067``, ``T(1) = 0.9933``).
        alpha (float): weight of ``L_am`` (Eq. 6; 1 in the paper).
        am_score (str): ``s^c`` of Eq. 5, not specified in the paper:
            ``'sigmoid'`` (default), ``'softmax'`` or ``'logit'``.
        am_grad (str): ``'all'`` (default; the paper states no stop-gradient):
            ``L_am`` trains the weights through both streams. ``'mask_only'``: the
            attention-mining stream runs with detached weights, so ``L_am`` reaches
            the network only through ``I* -> T -> A`` (not in the paper; a
            re-implementation option).
        am_start_iter (int): ``L_am`` is 0 before this training iteration (a
            warm-up with ``L_cl`` only; not in the paper, default 0). The iteration
            is the runner's (MMEngine's message hub, so it continues after
            ``--resume``); outside a runner, the head counts its training loss
            calls.
        ext_start_iter (int): the same for the extra-supervision losses
            (``loss_ext_pixel``, ``loss_ext_box``: computed, logged as 0 and kept
            in the graph with weight 0 before this iteration; not in the paper,
            default 0). For a classifier trained from scratch: the attention of an
            untrained classifier has a tiny range, and ``Â``'s normalisation
            divides the gradient of ``L_e`` by that range, so that ``L_e``
            outweighs ``L_cl`` by orders of magnitude (docs/benchmarks.md, section
            'GAIN on the toy dataset').
        second_order (bool): keep the graph of the Grad-CAM weights ``w^c``
            (double backpropagation), so that the attention losses also train the
            inner head through ``w^c``. Default False: ``w^c`` is a constant kernel
            (the paper's "we do not update parameters of the network after
            obtaining the w^c"); the gradient reaches the network through ``f``.
        mining_bn (str): ``'eval'`` (default): batch-norm layers run in eval mode
            in the attention-mining stream, so the erased images neither update
            nor use batch statistics (a re-implementation choice; the paper's VGG
            has no batch norm); ``'train'``: as the layers are.
        ext_weight (float): omega of Eqs. 8 and 10 (10 in the paper).
        ext_supervision (Sequence[str]): which extra supervision to use when a
            sample carries it: ``'pixel'`` (``gt_sem_seg``, GAIN^p_ext) and/or
            ``'box'`` (``gt_box_mask`` + ``gt_saliency``, GAIN^b_ext). Default
            ``()``: plain GAIN, the fields are ignored (mmwsss's training
            pipelines load ``gt_sem_seg`` for every image, e.g. for
            ``cat_max_ratio`` crops, so pixel supervision must be asked for).
        normalize (str): scale of ``A^c`` before Eq. 4, not in the paper:
            ``'minmax'`` (default, as the public re-implementations;
            :func:`~mmwsss.models.utils.minmax_normalize`) or ``'max'``
            (``A / max A``); both over the unpadded area, scale-free (the
            range / maximum is divided by at least 1e-5).
        init_cfg (dict, optional): initialisation of this head (the inner head
            has its own).
        **kwargs: :class:`BaseCAMHead` arguments: ``num_classes`` (optional; must
            equal the inner head's). ``loss_weight`` and ``in_index`` belong to
            the inner head.
    """
    loss_needs_inputs = True

    def __init__(self,
                 cls_head: Union[dict, BaseCAMHead],
                 attention: str = 'auto',
                 sigma: float = 0.5,
                 omega: float = 10.0,
                 alpha: float = 1.0,
                 am_score: str = 'sigmoid',
                 am_grad: str = 'all',
                 am_start_iter: int = 0,
                 ext_start_iter: int = 0,
                 second_order: bool = False,
                 mining_bn: str = 'eval',
                 ext_weight: float = 10.0,
                 ext_supervision: Sequence[str] = (),
                 normalize: str = 'minmax',
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        _check_choice('attention', attention, ATTENTION_MODES)
        _check_choice('am_score', am_score, AM_SCORES)
        _check_choice('am_grad', am_grad, AM_GRADS)
        _check_choice('mining_bn', mining_bn, MINING_BN)
        _check_choice('normalize', normalize, NORMALIZATIONS)
        if isinstance(ext_supervision, str):
            ext_supervision = (ext_supervision, )
        for kind in ext_supervision:
            _check_choice('ext_supervision entries', kind, EXT_KINDS)
        for name, value in (('am_start_iter', am_start_iter),
                            ('ext_start_iter', ext_start_iter)):
            if not isinstance(value, int) or isinstance(value, bool) or \
                    value < 0:
                raise ValueError(f'GAINHead: {name} must be an int >= 0, got '
                                 f'{value!r}')
        if float(omega) <= 0:
            raise ValueError(f'GAINHead: omega must be > 0, got {omega!r}')
        for key in ('loss_weight', 'in_index'):
            if key in kwargs:
                raise ValueError(
                    f'GAINHead: {key} belongs to the inner head: set it in '
                    f'cls_head=dict(..., {key}=...)')
        inner = MODELS.build(cls_head) if isinstance(cls_head, dict) \
            else cls_head
        if not isinstance(inner, BaseCAMHead) or isinstance(inner, GAINHead):
            raise TypeError(
                'GAINHead: cls_head must build a BaseCAMHead other than '
                f'GAINHead (e.g. CAMHead), got {type(inner).__name__}')
        num_classes = kwargs.pop('num_classes', inner.num_classes)
        if int(num_classes) != inner.num_classes:
            raise ValueError(
                f'GAINHead: num_classes={num_classes} but the inner head '
                f'{type(inner).__name__} has {inner.num_classes} classes')
        super().__init__(
            num_classes=inner.num_classes, init_cfg=init_cfg, **kwargs)
        self.cls_head = inner
        linear = self._closed_form_layer(inner)
        if attention == 'closed_form' and linear is None:
            raise ValueError(
                "GAINHead: attention='closed_form' needs an inner head whose "
                'image logits are the global average of a 1x1 conv of its '
                f'pre_logits features (CAMHead); {type(inner).__name__} is not: '
                "use attention='autograd' or 'auto'")
        if attention == 'auto':
            attention = 'autograd' if linear is None else 'closed_form'
        self.attention = attention
        #: the classifier runs predict_maps with gradients (Grad-CAM by autograd)
        self.cam_requires_grad = attention == 'autograd'
        self.sigma = float(sigma)
        self.omega = float(omega)
        self.alpha = float(alpha)
        self.am_grad = am_grad
        self.am_start_iter = am_start_iter
        self.ext_start_iter = ext_start_iter
        self.second_order = bool(second_order)
        self.mining_bn = mining_bn
        self.ext_weight = float(ext_weight)
        self.ext_supervision = tuple(ext_supervision)
        self.normalize = normalize
        #: the smallest range / maximum the attention is divided by
        self.eps = 1e-5
        self.am_loss = AttentionMiningLoss(score=am_score)
        self.pixel_loss = PixelAttentionLoss()
        self.box_loss = BoxAttentionLoss()
        self._loss_calls = 0
        self._warned_unused = set()
        self._register_load_state_dict_pre_hook(self._load_plain_head)

    def _load_plain_head(self, state_dict, prefix, *args) -> None:
        """Load the checkpoint of a classifier without GAIN (e.g. a trained CAM
        classifier: its head's weights right under this head's prefix) into
        ``cls_head``, so that GAIN can start from a trained classifier as the paper
        starts from a pretrained one (``load_from``). A checkpoint that already has
        ``cls_head`` weights (a GAIN checkpoint) is loaded as it is."""
        inner = prefix + 'cls_head.'
        if any(k.startswith(inner) for k in state_dict):
            return
        names = set(self.cls_head.state_dict())
        for key in [k for k in state_dict if k.startswith(prefix)]:
            if key[len(prefix):] in names:
                state_dict[inner + key[len(prefix):]] = state_dict.pop(key)

    @property
    def am_score(self) -> str:
        return self.am_loss.score

    @staticmethod
    def _closed_form_layer(inner: BaseCAMHead) -> Optional[nn.Conv2d]:
        """The inner head's 1x1 class conv if Grad-CAM has a closed form."""
        conv = inner.linear_classifier()
        if isinstance(conv, nn.Conv2d) and tuple(conv.kernel_size) == (1, 1) \
                and tuple(conv.stride) == (1, 1) and conv.groups == 1 and \
                tuple(conv.padding) == (0, 0):
            return conv
        return None

    # ------------------------------------------------------------ semantics
    def forward(self, feats):
        """The inner head's outputs (the classifier's ``tensor`` mode)."""
        return self.cls_head(feats)

    def class_maps(self, outputs) -> torch.Tensor:
        """The attention ``A^c`` (N, K, h, w) of a training step (the outputs of
        :meth:`loss`); zeros for classes not in the image."""
        if isinstance(outputs, dict) and 'attention' in outputs:
            return outputs['attention']
        raise ValueError(
            'GAINHead.class_maps needs the outputs of GAINHead.loss (Grad-CAM '
            'needs the features, not the score map); for inference use '
            'predict_maps')

    def image_logits(self, outputs) -> torch.Tensor:
        """The inner head's image logits (of :meth:`loss`'s outputs or of
        :meth:`forward`'s, the inner head's own, which may be a dict too)."""
        if isinstance(outputs, dict) and 'cls' in outputs:
            outputs = outputs['cls']
        return self.cls_head.image_logits(outputs)

    def train_step_extras(self, outputs) -> Dict[str, torch.Tensor]:
        """``mask_mean`` (N,): per image the mean soft mask ``T`` of its pairs."""
        if isinstance(outputs, dict) and 'mask_mean' in outputs:
            return dict(mask_mean=outputs['mask_mean'])
        return {}

    def loss_by_outputs(self, outputs, data_samples: Sequence) -> dict:
        """The inner head's loss (``L_cl``) of the outputs."""
        if isinstance(outputs, dict) and 'cls' in outputs:
            outputs = outputs['cls']
        return self.cls_head.loss_by_outputs(outputs, data_samples)

    # ------------------------------------------------------------ attention
    def _can_pack(self) -> bool:
        """Images of a batch do not interact in the inner head (no train-mode
        batch norm), so Grad-CAM may share backward rows between images."""
        return not any(
            isinstance(m, _BatchNorm) and m.training
            for m in self.cls_head.modules())

    def pair_attention(self, f: torch.Tensor, logits: torch.Tensor,
                       images: torch.Tensor, classes: torch.Tensor,
                       create_graph: bool) -> torch.Tensor:
        """(P, 1, h, w) Grad-CAM ``A^c`` of the pairs (Eqs. 1-2).

        Args:
            f (Tensor): (N, C, h, w) ``pre_logits`` features.
            logits (Tensor): (N, K) image logits computed from ``f``.
            images, classes (Tensor): (P,) the pairs.
            create_graph (bool): differentiable ``w^c`` (second order).
        """
        if self.attention == 'closed_form':
            weight = self.cls_head.linear_classifier().weight
            if not create_graph:
                weight = weight.detach()
            return gap_linear_grad_cam(f, weight, (images, classes))
        return grad_cam(f, logits, (images, classes),
                        create_graph=create_graph,
                        pack_images=self._can_pack())

    def normalized_attention(self, att: torch.Tensor, images: torch.Tensor,
                             input_shape: Tuple[int, int],
                             img_shapes: Sequence[Tuple[int, int]]
                             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``Â``: the pairs' attention upsampled (bilinear) to the padded input
        and normalised over each image's unpadded area; and that area.

        Returns:
            tuple: (P, 1, H, W) maps in [0, 1] (0 on the padding) and the (P, 1,
            H, W) bool valid area.
        """
        H, W = input_shape
        up = F.interpolate(att.float(), size=(H, W), mode='bilinear',
                           align_corners=False)
        valid = self._valid_area(images, input_shape, img_shapes, up.device)
        if self.normalize == 'minmax':
            return minmax_normalize(up, valid, eps=self.eps), valid
        # 'max': A / max A over the valid area (A >= 0 after the ReLU of Eq. 2)
        inside = up * valid.to(up.dtype)
        peak = inside.amax(dim=(-2, -1), keepdim=True)
        return inside / peak.clamp_min(self.eps), valid

    @staticmethod
    def _valid_area(images: torch.Tensor, input_shape: Tuple[int, int],
                    img_shapes: Sequence[Tuple[int, int]],
                    device: torch.device) -> torch.Tensor:
        H, W = input_shape
        shapes = torch.tensor([list(s) for s in img_shapes],
                              dtype=torch.long, device=device).reshape(-1, 2)
        hw = shapes[images.to(device)]  # (P, 2)
        rows = torch.arange(H, device=device)
        cols = torch.arange(W, device=device)
        valid = (rows[None, :, None] < hw[:, 0, None, None]) & \
            (cols[None, None, :] < hw[:, 1, None, None])
        return valid[:, None]

    # ---------------------------------------------------------------- loss
    def current_iter(self) -> int:
        """The training iteration ``am_start_iter`` is compared with: the runner's
        (``MessageHub`` info ``iter`` while the train loop runs; restored on
        ``--resume``), else the number of earlier training loss calls of this
        head."""
        hub = MessageHub.get_current_instance()
        if hub.get_info('loop_stage') == 'train':
            it = hub.get_info('iter')
            if it is not None:
                return int(it)
        return self._loss_calls

    def _img_shapes(self, data_samples: Sequence,
                    input_shape: Tuple[int, int]) -> List[Tuple[int, int]]:
        shapes = []
        for ds in data_samples:
            shape = ds.metainfo.get('img_shape', input_shape)
            h, w = int(shape[0]), int(shape[1])
            if h > input_shape[0] or w > input_shape[1]:
                raise ValueError(
                    f"GAINHead: img_shape {(h, w)} of image id "
                    f"{ds.metainfo.get('img_id')!r} is larger than the input "
                    f'{tuple(input_shape)}')
            shapes.append((h, w))
        return shapes

    def _mining_logits(self, erased: torch.Tensor,
                       extract_feat: Callable) -> torch.Tensor:
        """(P, K) logits of the attention-mining stream on the masked images."""
        frozen = self.mining_bn == 'eval'
        detach = self.am_grad == 'mask_only'
        feats = extract_feat(erased, bn_eval=frozen, detach_weights=detach)
        inner = self.cls_head
        with bn_eval(inner) if frozen else nullcontext():
            if detach:
                outputs = detached_call(inner, feats)
                return detached_call(inner, outputs, method='image_logits')
            return inner.image_logits(inner(feats))

    def loss(self,
             feats,
             data_samples: Sequence,
             inputs: Optional[torch.Tensor] = None,
             extract_feat: Optional[Callable] = None) -> Tuple[dict, dict]:
        """One GAIN training step (see the class docstring).

        Args:
            feats: backbone (+ neck) features of ``inputs``.
            data_samples (list): ``gt_label`` (required), ``img_shape``; the extra
                supervision fields (``gt_sem_seg``; ``gt_box_mask`` +
                ``gt_saliency``) on the images that have them.
            inputs (Tensor): (N, C, H, W) the normalised, padded input batch.
            extract_feat (callable): ``extract_feat(x, bn_eval=..,
                detach_weights=..)``, the backbone (+ neck) for the
                attention-mining stream (``WSClassifier.extract_feat_stream``).

        Returns:
            tuple: the losses (``loss_cls``, ``loss_am``, optionally
            ``loss_ext_pixel``, ``loss_ext_box``; ``am_mask_mean`` logged only)
            and the outputs (``cls``: the inner head's outputs, ``attention``,
            ``mask_mean``).
        """
        if inputs is None or extract_feat is None:
            raise ValueError(
                'GAINHead.loss needs inputs and extract_feat (the attention-mining '
                'stream runs the backbone on the masked images): use it in '
                'WSClassifier, which passes them to heads with '
                'loss_needs_inputs = True')
        it = self.current_iter()
        self._loss_calls += 1
        inner = self.cls_head
        f = inner.pre_logits(feats)
        if not f.requires_grad:  # e.g. a frozen backbone: Grad-CAM needs a graph
            f = f.detach().requires_grad_()
        outputs = inner.outputs_from_pre_logits(f)
        logits = inner.image_logits(outputs)
        losses = dict(inner.loss_by_outputs(outputs, data_samples))
        labels = inner.gt_labels(data_samples, logits)
        images, classes = torch.nonzero(labels > 0, as_tuple=True)
        n, _, h, w = f.shape
        input_shape = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        img_shapes = self._img_shapes(data_samples, input_shape)

        att = self.pair_attention(f, logits, images, classes,
                                  create_graph=self.second_order)
        norm, valid = self.normalized_attention(att, images, input_shape,
                                                img_shapes)
        masks = soft_mask(norm, self.sigma, self.omega)  # Eq. 4
        mask_mean_pair = (masks * valid).flatten(1).sum(1) / \
            valid.flatten(1).sum(1).clamp(min=1)

        if images.numel() and it >= self.am_start_iter:
            erased = erase_inputs(  # Eq. 3, one masked image per pair
                inputs[images],
                [m[:, :img_shapes[b][0], :img_shapes[b][1]]
                 for m, b in zip(masks.to(inputs.dtype), images.tolist())],
                [img_shapes[b] for b in images.tolist()],
                fill_value=0.)
            am_logits = self._mining_logits(erased, extract_feat)
            loss_am = self.am_loss(am_logits, classes, images)  # Eq. 5
        else:
            loss_am = logits.new_zeros((), dtype=torch.float32)
        losses['loss_am'] = self.alpha * loss_am  # Eq. 6
        ext = self._ext_losses(norm, valid, images, classes, data_samples,
                               img_shapes)
        if it < self.ext_start_iter:  # warm-up: 0, the graph kept (DDP)
            ext = {k: v * 0. for k, v in ext.items()}
        losses.update(ext)
        with torch.no_grad():
            losses['am_mask_mean'] = mask_mean_pair.mean() if \
                images.numel() else mask_mean_pair.new_zeros(())
            attention = att.new_zeros((n, self.num_classes, h, w))
            attention[images, classes] = att.detach()[:, 0]
            mask_mean = mask_mean_pair.new_zeros(n).index_add(
                0, images, mask_mean_pair.detach())
            mask_mean = mask_mean / torch.bincount(
                images, minlength=n).clamp(min=1).to(mask_mean)
        return losses, dict(cls=outputs, attention=attention,
                            mask_mean=mask_mean)

    # --------------------------------------------------------- GAIN_ext
    def _warn_unused(self, field: str, kind: str) -> None:
        if field not in self._warned_unused:
            self._warned_unused.add(field)
            print_log(
                f'GAINHead: the samples carry {field} but ext_supervision does '
                f"not list {kind!r}: the field is not used (set ext_supervision="
                f"('{kind}', ...) for GAIN_ext)", logger='current', level=30)

    @staticmethod
    def _crop(data: torch.Tensor, shape: Tuple[int, int], field: str,
              ds) -> torch.Tensor:
        """The top-left ``shape`` of a (C, H', W') map (maps padded by the data
        preprocessor, e.g. ``gt_sem_seg`` with 255, are cropped)."""
        h, w = shape
        if data.dim() != 3 or data.shape[-2] < h or data.shape[-1] < w:
            raise ValueError(
                f"GAINHead: {field} of image id {ds.metainfo.get('img_id')!r} "
                f'has shape {tuple(data.shape)}; expected (C, H, W) covering '
                f'img_shape {(h, w)} (the network input before padding)')
        return data[:, :h, :w]

    def _ext_losses(self, norm: torch.Tensor, valid: torch.Tensor,
                    images: torch.Tensor, classes: torch.Tensor,
                    data_samples: Sequence,
                    img_shapes: Sequence[Tuple[int, int]]) -> dict:
        """``loss_ext_pixel`` (Eqs. 7-8) and ``loss_ext_box`` (Eqs. 9-10) on the
        pairs of the images that carry the supervision."""
        losses = {}
        # a sample flagged by the dataset's strong subsets (``strong_pixel`` in
        # its meta) uses its mask only when flagged: a pipeline that also loads
        # the masks of the other images must not make them supervised
        has_pixel = [i for i, ds in enumerate(data_samples)
                     if 'gt_sem_seg' in ds and
                     ds.metainfo.get('strong_pixel', True)]
        has_box = [i for i, ds in enumerate(data_samples)
                   if 'gt_box_mask' in ds]
        if has_box and 'box' not in self.ext_supervision:
            self._warn_unused('gt_box_mask', 'box')
        if 'pixel' not in self.ext_supervision and any(
                ds.metainfo.get('strong_pixel') for ds in data_samples):
            self._warn_unused('gt_sem_seg (strong_pixel images)', 'pixel')
        if 'pixel' in self.ext_supervision and has_pixel:
            losses.update(self._pixel_loss(norm, valid, images, classes,
                                           data_samples, img_shapes,
                                           set(has_pixel)))
        if 'box' in self.ext_supervision and has_box:
            losses.update(self._box_loss(norm, valid, images, classes,
                                         data_samples, img_shapes,
                                         set(has_box)))
        return losses

    def _pair_rows(self, images: torch.Tensor, chosen: set) -> List[int]:
        return [p for p, b in enumerate(images.tolist()) if b in chosen]

    def _pixel_loss(self, norm, valid, images, classes, data_samples,
                    img_shapes, chosen) -> dict:
        rows = self._pair_rows(images, chosen)
        if not rows:  # pixel-labelled images without image labels
            return {}
        H, W = norm.shape[-2:]
        targets = norm.new_zeros((len(rows), H, W))
        keep = torch.zeros((len(rows), H, W), dtype=torch.bool,
                           device=norm.device)
        for j, p in enumerate(rows):
            b, c = int(images[p]), int(classes[p])
            ds = data_samples[b]
            h, w = img_shapes[b]
            seg = self._crop(ds.gt_sem_seg.data, (h, w), 'gt_sem_seg',
                             ds)[0].to(norm.device)
            targets[j, :h, :w] = (seg == c + 1).to(norm.dtype)
            keep[j, :h, :w] = seg != IGNORE_INDEX
        idx = torch.tensor(rows, device=norm.device)
        keep &= valid[idx, 0]
        loss = self.pixel_loss(norm[idx, 0], targets, images[idx], keep)
        return {self.pixel_loss.loss_name: self.ext_weight * loss}

    def _box_loss(self, norm, valid, images, classes, data_samples,
                  img_shapes, chosen) -> dict:
        rows = self._pair_rows(images, chosen)
        if not rows:
            return {}
        H, W = norm.shape[-2:]
        boxes = norm.new_zeros((len(rows), H, W))
        sal = norm.new_zeros((len(rows), H, W))
        for j, p in enumerate(rows):
            b, c = int(images[p]), int(classes[p])
            ds = data_samples[b]
            h, w = img_shapes[b]
            if 'gt_saliency' not in ds:
                raise ValueError(
                    "GAINHead: image id {!r} has gt_box_mask but no "
                    "gt_saliency (GAIN's box loss, Eq. 9, matches the attention "
                    'to the saliency inside the boxes)'.format(
                        ds.metainfo.get('img_id')))
            box = self._crop(ds.gt_box_mask.data, (h, w), 'gt_box_mask', ds)
            if box.shape[0] != self.num_classes:
                raise ValueError(
                    f"GAINHead: gt_box_mask of image id "
                    f"{ds.metainfo.get('img_id')!r} has {box.shape[0]} "
                    f'channels, expected num_classes={self.num_classes}')
            s = self._crop(ds.gt_saliency.data, (h, w), 'gt_saliency', ds)
            boxes[j, :h, :w] = (box[c] > 0).to(device=norm.device,
                                                dtype=norm.dtype)
            sal[j, :h, :w] = s[0].to(device=norm.device, dtype=norm.dtype)
        idx = torch.tensor(rows, device=norm.device)
        loss = self.box_loss(norm[idx, 0], boxes, sal, images[idx],
                             valid[idx, 0])
        return {self.box_loss.loss_name: self.ext_weight * loss}

    # -------------------------------------------------------------- predict
    def predict_maps(self, feats, data_samples: Optional[Sequence] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(Grad-CAM ``A^c`` of every class (N, K, h, w), the inner head's image
        logits (N, K)), first order. The autograd form needs gradients (the
        classifier enables them, ``cam_requires_grad``); the closed form does
        not."""
        inner = self.cls_head
        if self.attention == 'closed_form':
            f = inner.pre_logits(feats)
            logits = inner.image_logits(inner.outputs_from_pre_logits(f))
            weight = inner.linear_classifier().weight
            return gap_linear_grad_cam(f, weight.detach()), logits
        with torch.enable_grad():
            f = inner.pre_logits(feats)
            if not f.requires_grad:
                f = f.detach().requires_grad_()
            logits = inner.image_logits(inner.outputs_from_pre_logits(f))
            n, k = logits.shape
            images = torch.arange(n, device=f.device).repeat_interleave(k)
            classes = torch.arange(k, device=f.device).repeat(n)
            maps = grad_cam(f, logits, (images, classes), create_graph=False,
                            pack_images=self._can_pack())
        return maps.reshape(n, k, *maps.shape[-2:]).detach(), logits.detach()
