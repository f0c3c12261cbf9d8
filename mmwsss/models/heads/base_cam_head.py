from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmwsss.models.utils import normalize_cams


class BaseCAMHead(BaseModule, metaclass=ABCMeta):
    """The extension contract of a WSSS classification head (``docs/extending.md``).

    A head owns what its class maps *mean*; :class:`~mmwsss.models.WSClassifier`
    only does the generic parts (test-time scales x flip, crop to the valid area,
    resize, class restriction, normalisation with
    :func:`~mmwsss.models.utils.normalize_cams`). A subclass defines

    (a) :meth:`class_maps`: the non-negative (N, K, h, w) maps CAMs are made of
        (default ``ReLU(F)``, CAM / OAA Eq. 2 before the max-normalisation);
    (b) :meth:`image_logits`: the (N, K) image-level scores before the sigmoid
        (default ``GAP(F)``, OAA Eq. 1);
    (c) :meth:`loss_by_outputs`: the training losses (default: the multi-label soft
        margin loss on the image logits, i.e. the mean binary cross-entropy of
        ``sigmoid(s_c)``);
    (d) what a hook may read from the training step: :meth:`class_maps` and
        :meth:`image_logits` of the step's outputs, plus :meth:`train_step_extras`
        (recorded in :class:`~mmwsss.structures.WSTrainStep`).

    :meth:`forward` returns the head's outputs (whatever the subclass needs: a score
    map tensor for the CAM heads), which is also the classifier's ``tensor`` mode.
    :meth:`predict_maps` computes (a) and (b) for CAM inference; a head that needs
    gradients there (Grad-CAM) sets :attr:`cam_requires_grad` and the classifier
    calls it with gradients enabled and features that require grad.

    A head whose loss runs the network a second time on modified inputs (GAIN's
    attention-mining stream on the erased images) sets :attr:`loss_needs_inputs`:
    the classifier then calls ``loss(feats, data_samples, inputs=inputs,
    extract_feat=classifier.extract_feat_stream)`` within the same forward pass.

    Heads that wrap another head (GAIN computes Grad-CAM of any head) see the
    layer the class maps are taken at through :meth:`pre_logits` (the features
    ``f`` entering the last, class-wise layer) and
    :meth:`outputs_from_pre_logits` (the outputs from ``f``), with
    ``forward(feats) == outputs_from_pre_logits(pre_logits(feats))``; a head that
    overrides :meth:`forward` overrides both. :meth:`linear_classifier` names the
    last layer when the image logits are its global average (Grad-CAM then has a
    closed form).

    The head predicts *foreground* classes only (``num_classes`` = K, no background),
    which :class:`~mmwsss.engine.hooks.WSSSNumClassCheckHook` knows through
    ``num_classes_excludes_background``.

    Args:
        num_classes (int): number of foreground classes K.
        loss_weight (float): weight of the head's loss.
        in_index (int): which backbone output to use when it returns several.
        init_cfg (dict | list, optional): initialisation config.
    """
    num_classes_excludes_background = True
    #: run :meth:`predict_maps` with gradients enabled (e.g. Grad-CAM)
    cam_requires_grad = False
    #: :meth:`loss` takes ``inputs`` and ``extract_feat`` (a second stream)
    loss_needs_inputs = False

    def __init__(self,
                 num_classes: int,
                 loss_weight: float = 1.0,
                 in_index: int = -1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if int(num_classes) < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes!r}')
        self.num_classes = int(num_classes)
        self.loss_weight = loss_weight
        self.in_index = in_index

    def _select(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]):
        """The backbone / neck output this head uses (``in_index``)."""
        if isinstance(feats, (list, tuple)):
            return feats[self.in_index]
        return feats

    @abstractmethod
    def forward(self, feats):
        """The head's outputs for backbone features ``feats``."""

    def pre_logits(self, feats) -> torch.Tensor:
        """The (N, C, h, w) features entering the head's last, class-wise layer
        (Grad-CAM's ``f``): the selected backbone feature by default."""
        return self._select(feats)

    def outputs_from_pre_logits(self, x: torch.Tensor):
        """The head's outputs from :meth:`pre_logits` ``x``: ``forward(x)`` by
        default (``pre_logits`` is the selected input)."""
        return self.forward(x)

    def linear_classifier(self) -> Optional[torch.nn.Module]:
        """The 1x1 convolution ``L`` with ``outputs = L(pre_logits(feats))`` and
        ``image_logits = GAP(outputs)``, or None when the head is not of that form
        (default). Grad-CAM of such a head has a closed form
        (:func:`~mmwsss.models.utils.gap_linear_grad_cam`)."""
        return None

    # ------------------------------------------------------------ semantics
    def class_maps(self, outputs) -> torch.Tensor:
        """(N, K, h, w) non-negative class maps: ``ReLU(F)``."""
        return F.relu(outputs)

    def image_logits(self, outputs) -> torch.Tensor:
        """(N, K) image-level scores before the sigmoid: ``s = GAP(F)``."""
        return outputs.mean(dim=(2, 3))

    def cam(self, outputs) -> torch.Tensor:
        """Normalised CAMs ``A = class_maps / max`` (OAA Eq. 2) of ``outputs``, at
        their own resolution; an all-zero map stays zero."""
        return normalize_cams(self.class_maps(outputs))

    def train_step_extras(self, outputs) -> Dict[str, torch.Tensor]:
        """Further tensors of a training step for hooks (detached by the
        classifier). None by default."""
        return {}

    # --------------------------------------------------------------- losses
    def gt_labels(self, data_samples: Sequence,
                  like: torch.Tensor) -> torch.Tensor:
        """(N, K) multi-hot ``gt_label`` of the samples, dtype/device of ``like``."""
        for ds in data_samples:
            if 'gt_label' not in ds:
                raise ValueError(
                    f'{type(self).__name__} needs data_sample.gt_label (image id '
                    f"{ds.metainfo.get('img_id')!r}): use PackWSSSInputs")
        labels = torch.stack([ds.gt_label for ds in data_samples]).to(
            device=like.device, dtype=like.dtype)
        if labels.dim() != 2 or labels.shape[1] != self.num_classes:
            raise ValueError(
                f'gt_label has {labels.shape[-1]} classes but '
                f'{type(self).__name__}.num_classes is {self.num_classes}')
        return labels

    def loss_by_outputs(self, outputs, data_samples: Sequence) -> dict:
        """Multi-label soft margin loss on :meth:`image_logits` (OAA Eq. 1)."""
        logits = self.image_logits(outputs)
        labels = self.gt_labels(data_samples, logits)
        loss = F.multilabel_soft_margin_loss(logits, labels)
        return dict(loss_cls=self.loss_weight * loss)

    def loss(self, feats, data_samples: Sequence) -> Tuple[dict, object]:
        """The losses and the outputs of the same forward pass (the classifier
        records the step from them for hooks)."""
        outputs = self.forward(feats)
        return self.loss_by_outputs(outputs, data_samples), outputs

    # -------------------------------------------------------------- predict
    def predict_maps(self, feats, data_samples: Optional[Sequence] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(class maps (N, K, h, w), image logits (N, K)) of one inference pass.

        ``data_samples`` is given (the test-time augmented batch's samples, or None)
        for heads whose maps depend on the labels, e.g. Grad-CAM of given classes.
        """
        outputs = self.forward(feats)
        return self.class_maps(outputs), self.image_logits(outputs)

    def predict_class_maps(self, feats, data_samples: Optional[Sequence] = None
                           ) -> torch.Tensor:
        """The class maps of :meth:`predict_maps` alone, for the test-time passes
        whose image scores the classifier does not keep (every scale but one).
        By default ``predict_maps(...)[0]``; a head whose scores cost a separate
        computation (EDAM's attention module) skips it here."""
        return self.predict_maps(feats, data_samples)[0]
