"""What a training step of a WSSS classifier exposes to hooks."""
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch


@dataclass
class WSTrainStep:
    """The record of one training step of :class:`~mmwsss.models.WSClassifier`.

    It is the **only** thing training hooks read from a step (``docs/extending.md``,
    "Training-step protocol"). A hook switches recording on with
    :func:`mmwsss.models.enable_train_step_record`; the classifier then sets
    ``model.last_train_step`` in every ``loss`` call, reusing the forward pass of the
    step (no copy of the input, no extra forward, no I/O). All tensors are detached.

    Attributes:
        index (int): a counter of the recorded steps of this model; a hook that
            already read step ``index`` skips it (several hooks may read one step).
        class_maps (Tensor): (N, K, h, w) non-negative class maps of the head
            (:meth:`~mmwsss.models.heads.BaseCAMHead.class_maps`; ``ReLU(F)`` for
            :class:`~mmwsss.models.heads.CAMHead`), not normalised.
        logits (Tensor): (N, K) image-level scores before the sigmoid
            (:meth:`~mmwsss.models.heads.BaseCAMHead.image_logits`).
        data_samples (list): the step's :class:`~mmwsss.structures.WSSSDataSample`
            s: ``gt_label``, ``img_id``, ``ori_shape``, ``img_shape``, the
            augmentation geometry (``scale_factor``, ``crop_bbox``, ``flip``, ...),
            ``batch_input_shape`` and what batch augments recorded
            (``attention_dropped``, ``dropped_ratio``).
        input_shape (tuple): (H, W) of the padded network input.
        extras (dict): further detached tensors a head chooses to expose
            (:meth:`~mmwsss.models.heads.BaseCAMHead.train_step_extras`), e.g.
            embeddings for a memory bank.
    """
    index: int
    class_maps: torch.Tensor
    logits: torch.Tensor
    data_samples: List
    input_shape: Tuple[int, int]
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)
