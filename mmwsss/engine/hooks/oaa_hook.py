"""Online attention accumulation (OAA, [T] §3.2-3.3) as an MMEngine hook.

References: docs/methods/oaa.md, section 'References'.
"""
import hashlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.runner import IterBasedTrainLoop
from mmengine.structures import PixelData

from mmwsss.models.classifiers.ws_classifier import enable_train_step_record
from mmwsss.models.layers.attention_drop import AttentionDrop
from mmwsss.models.utils import normalize_cams
from mmwsss.registry import HOOKS
from mmwsss.structures import WSTrainStep
from mmwsss.utils.geometry import from_canonical, to_canonical
from .attention_store import AttentionStore
from .stateful_hook import StatefulHook

STATE_KEY = 'oaa_state'
STATE_VERSION = 1


def canonical_shape(ori_shape: Sequence[int], short_side: Optional[int],
                    stride: int) -> Tuple[int, int]:
    """Size of an image's canonical frame: the original image, its short side
    optionally resized to ``short_side`` ([C]: 224), divided by the output stride."""
    h, w = int(ori_shape[0]), int(ori_shape[1])
    r = 1.0 if not short_side else float(short_side) / min(h, w)
    return (max(1, int(h * r + 0.5) // stride), max(1, int(w * r + 0.5) // stride))


def _uniform(seed: int, epoch: int, img_id: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, epoch, image id)."""
    digest = hashlib.blake2b(f'{seed}:{epoch}:{img_id}'.encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, 'little') / 2.**64


def _new_stats() -> dict:
    return dict(visits=0, accepted=0, fallback=0, dropped=0, erased=0.0)


@HOOKS.register_module()
class OAAHook(StatefulHook):
    """Online attention accumulation ([T] §3.2, Eqs. 2-5, 10) and the state of the
    attention drop layer (OAA++, [T] §3.3, Alg. 1).

    At every training step the classifier's record of the step
    (:class:`~mmwsss.structures.WSTrainStep`, the training-step protocol of
    ``docs/extending.md``: the head's class maps ``ReLU(F)`` and image logits of the
    same forward pass; no extra forward, nothing written to disk inside ``forward``)
    gives, for each image i and each of its ground-truth classes c, the attention
    ``A = ReLU(F^c) / max ReLU(F^c)`` (Eq. 2, :func:`~mmwsss.models.utils.normalize_cams`). If the gate accepts it, ``A`` is fused
    into the cumulative map ``M^(i,c)``: the first accepted map initialises ``M``
    (Eq. 3), then ``M_t = max(M_{t-1}, A_t)`` (``fusion='max'``, Eq. 5, default) or the
    running mean over accepted visits (``'avg'``, Eq. 10).

    Maps are keyed by image id and live in a **canonical frame** of the original image
    (its short side resized to ``canonical_short_side`` if set, divided by
    ``canonical_stride``): the augmentation of each visit (random resize, crop, flip,
    padding; see :func:`~mmwsss.utils.geometry.to_canonical`) is inverted before
    fusing, and pixels a crop did not show keep their value. So unlike the official
    code, which keys maps by data-loader index and therefore forbids shuffling and
    geometric augmentation, any sampler and augmentation may be used. The maximum of
    Eq. 2 is taken over the visible image (padding excluded).

    Gate (``gate``): ``'paper'`` (default, [T] §3.2): accept ``A^c`` iff the class score
    ``s_c`` is greater than the score of every non-target class (ties rejected; always
    accepted when the image has every class); ``'topk'`` (official code): accept iff c
    is among the ``|Y|`` highest-scoring classes. ``'none'`` accepts every map.

    Schedule: nothing is accumulated before epoch ``start_epoch`` (0-based; the
    official code uses 1, the paper starts at the first epoch, i.e. 0). With
    ``fallback_last_epoch`` (official code) a (image, class) pair that has no map when
    the last epoch visits it gets that visit's map regardless of the gate, so every
    pair ends with a map.

    Attention drop (OAA++): when the model's data preprocessor has an
    :class:`~mmwsss.models.layers.AttentionDrop` batch augment, the hook
    also keeps each pair's last *accepted* map (official code) and, before each step,
    warps the GT classes' previous maps into the current augmentation
    (``data_sample.prev_attention``, (K, h, w) at the image size) and gives each image
    a uniform number ``drop_rand`` fixed by (seed, epoch, image id), so the drop
    decisions do not depend on the world size and survive ``--resume``.

    State and distribution (:class:`StatefulHook`): both stores are uint8 (about 16 MB for VOC12 train_aug in
    the 224/8 frame, 50 MB at original size / 8), saved in every checkpoint under
    ``checkpoint['oaa_state']`` (flat numpy arrays) and restored on ``--resume``.
    Under DistributedDataParallel each rank updates the images its sampler gives it;
    the ranks exchange their changed maps at the end of every epoch (and before an
    iteration-based checkpoint), so all ranks hold the complete state.

    Export: after training the cumulative maps are written in the CAM format
    (``docs/cam_format.md``) at the original image size (bicubic + min-max, as the
    official ``res.py``) to ``export_dir`` (relative to ``work_dir``), split over the
    ranks; ``tools/export_oaa_maps.py`` does the same from any checkpoint.

    Args:
        fusion (str): ``'max'`` (Eq. 5) or ``'avg'`` (Eq. 10).
        gate (str): ``'paper'``, ``'topk'`` or ``'none'``.
        start_epoch (int): first (0-based) epoch that accumulates. Default 1.
        fallback_last_epoch (bool): the official last-epoch fallback. Default True.
        canonical_short_side (int, optional): short side of the canonical frame
            before the stride (224 for the official recipe); None: original size.
        canonical_stride (int): output stride of the classifier (8).
        export_dir (str, optional): folder for the exported CAM files after
            training; None disables the export. Default ``'oaa_maps'``.
        export_interpolation (str): ``'bicubic'`` ([C]) or ``'bilinear'``.
        log_stats (bool): log acceptance counts and state size every epoch.
    """
    state_key = STATE_KEY
    state_version = STATE_VERSION

    def __init__(self,
                 fusion: str = 'max',
                 gate: str = 'paper',
                 start_epoch: int = 1,
                 fallback_last_epoch: bool = True,
                 canonical_short_side: Optional[int] = None,
                 canonical_stride: int = 8,
                 export_dir: Optional[str] = 'oaa_maps',
                 export_interpolation: str = 'bicubic',
                 log_stats: bool = True):
        if gate not in ('paper', 'topk', 'none'):
            raise ValueError(
                f"OAAHook: gate must be 'paper', 'topk' or 'none', got {gate!r}")
        if start_epoch < 0:
            raise ValueError('OAAHook: start_epoch must be >= 0')
        if canonical_stride < 1:
            raise ValueError('OAAHook: canonical_stride must be >= 1')
        super().__init__(export_dir=export_dir)
        self.cumulative = AttentionStore(fusion)
        self.previous: Optional[AttentionStore] = None
        self.fusion = fusion
        self.gate = gate
        self.start_epoch = int(start_epoch)
        self.fallback_last_epoch = bool(fallback_last_epoch)
        self.canonical_short_side = canonical_short_side
        self.canonical_stride = int(canonical_stride)
        self.export_interpolation = export_interpolation
        self.log_stats = log_stats
        self.ori_shapes: Dict[str, Tuple[int, int]] = {}
        self._new_shapes: Dict[str, Tuple[int, int]] = {}
        self.num_classes: Optional[int] = None
        self.seed = 0
        self._stats = _new_stats()
        self._last_step: Optional[int] = None

    # --------------------------------------------------------------- helpers
    def canonical_shape(self, ori_shape) -> Tuple[int, int]:
        return canonical_shape(ori_shape, self.canonical_short_side,
                               self.canonical_stride)

    @property
    def drop_enabled(self) -> bool:
        return self.previous is not None

    def gate_accepts(self, scores: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
        """(K,) bool: which GT classes the gate accepts ([T] §3.2 / [C])."""
        pos = labels > 0
        if self.gate == 'none':
            return pos
        if self.gate == 'paper':
            neg = ~pos
            if not neg.any():
                return pos
            best_neg = scores[neg].max()
            return pos & (scores > best_neg)
        k = int(pos.sum())
        keep = torch.zeros_like(pos)
        if k:
            order = torch.argsort(scores, descending=True, stable=True)
            keep[order[:k]] = True
        return pos & keep

    # ----------------------------------------------------------- life cycle
    def before_train(self, runner) -> None:
        model = enable_train_step_record(runner.model, 'OAAHook')
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            raise ValueError(
                'OAAHook accumulates once per epoch: use '
                "train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=...)")
        self.num_classes = int(model.num_classes)
        self.seed = int(getattr(runner, 'seed', 0) or 0)
        preprocessor = getattr(model, 'data_preprocessor', None)
        find = getattr(preprocessor, 'find_augment', None)
        has_drop = find is not None and find(AttentionDrop) is not None
        if has_drop and self.previous is None:
            self.previous = AttentionStore('last')
        elif not has_drop:
            self.previous = None

    def before_train_epoch(self, runner) -> None:
        self._stats = _new_stats()

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        if not self.drop_enabled or not data_batch:
            return
        for ds in data_batch.get('data_samples', []) or []:
            meta = ds.metainfo
            img_id = meta.get('img_id')
            if img_id is None or 'gt_label' not in ds:
                continue
            ds.set_metainfo(dict(drop_rand=_uniform(self.seed, runner.epoch,
                                                    img_id)))
            classes = torch.nonzero(ds.gt_label > 0)[:, 0].tolist()
            prev = [self.previous.get(img_id, c) for c in classes]
            prev = [p for p in prev if p is not None]
            if not prev:
                continue
            canon = torch.from_numpy(np.stack(prev))
            ds.prev_attention = PixelData(data=from_canonical(canon, meta))

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        step = getattr(self.unwrapped_model(runner), 'last_train_step', None)
        # the model records every step; several OAA hooks (e.g. different gates or
        # start epochs in one run) may read the same step, each once
        if step is not None and step.index != self._last_step:
            self._last_step = step.index
            self._accumulate(runner, step)
        super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def _accumulate(self, runner, step: WSTrainStep) -> None:
        epoch = runner.epoch
        last = epoch == runner.max_epochs - 1
        fallback = self.fallback_last_epoch and last
        if epoch < self.start_epoch and not fallback:
            return
        scores = step.logits.float()
        relu = step.class_maps.float()
        samples = step.data_samples
        input_shape = step.input_shape
        accumulate = epoch >= self.start_epoch
        for i, ds in enumerate(samples):
            meta = ds.metainfo
            img_id = str(meta['img_id'])
            labels = ds.gt_label.to(scores.device)
            classes = torch.nonzero(labels > 0)[:, 0]
            # every visited image is exported, one without a class as a CAM file
            # with no map (K = 0): its seeds are background
            if img_id not in self.ori_shapes:
                shape = tuple(int(v) for v in meta['ori_shape'][:2])
                self.ori_shapes[img_id] = shape
                self._new_shapes[img_id] = shape
            if not len(classes):
                continue
            if meta.get('attention_dropped', False):
                self._stats['dropped'] += 1
                self._stats['erased'] += float(meta.get('dropped_ratio', 0.0))
            accept = self.gate_accepts(scores[i], labels) if accumulate else \
                torch.zeros_like(labels, dtype=torch.bool)
            todo = []
            for c in classes.tolist():
                self._stats['visits'] += 1
                if accept[c]:
                    todo.append((c, False))
                elif fallback and (img_id, c) not in self.cumulative:
                    todo.append((c, True))
            if not todo:
                continue
            idx = torch.tensor([c for c, _ in todo], device=relu.device)
            canon, valid = to_canonical(relu[i, idx], meta, input_shape,
                                        self.canonical_shape(meta['ori_shape']))
            # Eq. 2 over the part of the image this view showed
            att = normalize_cams(canon, valid).clamp_(0, 1).cpu().numpy()
            valid_np = valid.cpu().numpy()
            for (c, is_fallback), a in zip(todo, att):
                self.cumulative.update(img_id, c, a, valid_np)
                if self.previous is not None:
                    self.previous.update(img_id, c, a, valid_np)
                self._stats['fallback' if is_fallback else 'accepted'] += 1

    def after_train_epoch(self, runner) -> None:
        super().after_train_epoch(runner)  # synchronise the ranks
        if self.log_stats:
            st = self.gather_counts(self._stats)
            if runner.epoch < self.start_epoch and not st['fallback']:
                runner.logger.info(
                    f'OAA epoch {runner.epoch + 1}: not accumulating yet '
                    f'(start_epoch={self.start_epoch}, 0-based)')
                return
            msg = (f'OAA epoch {runner.epoch + 1}: accepted {st["accepted"]}'
                   f'/{st["visits"]} GT-class visits')
            if st['fallback']:
                msg += f', {st["fallback"]} last-epoch fallbacks'
            if self.drop_enabled:
                erased = st['erased'] / max(st['dropped'], 1)
                msg += (f', {st["dropped"]} images with attention drop '
                        f'(mean erased area {100 * erased:.1f}%)')
            msg += (f'; {len(self.cumulative)} cumulative maps of '
                    f'{len(self.ori_shapes)} images '
                    f'({self.state_nbytes() / 2**20:.1f} MB)')
            runner.logger.info(msg)

    def after_train(self, runner) -> None:
        model = self.unwrapped_model(runner)
        model.record_train_step = False
        model.last_train_step = None
        self._last_step = None
        super().after_train(runner)  # export

    # ----------------------------------------------------------- distributed
    def collect_changes(self) -> tuple:
        cum = self.cumulative.pop_dirty()
        prev = self.previous.pop_dirty() if self.previous is not None else []
        shapes, self._new_shapes = self._new_shapes, {}
        return cum, prev, shapes

    def apply_changes(self, per_rank: List[tuple]) -> None:
        self.cumulative.merge_ranks([g[0] for g in per_rank])
        if self.previous is not None:
            self.previous.merge_ranks([g[1] for g in per_rank])
        for g in per_rank:
            self.ori_shapes.update(g[2])

    # ------------------------------------------------------------ checkpoint
    def state_nbytes(self) -> int:
        n = self.cumulative.nbytes
        if self.previous is not None:
            n += self.previous.nbytes
        return n

    def state_dict(self) -> dict:
        ids = sorted(self.ori_shapes)
        state = dict(
            num_classes=int(self.num_classes or 0),
            canonical_short_side=int(self.canonical_short_side or 0),
            canonical_stride=self.canonical_stride,
            image_ids=np.array(ids, dtype=np.str_),
            ori_shapes=np.array([self.ori_shapes[i] for i in ids],
                                dtype=np.int32).reshape(-1, 2),
            cumulative=self.cumulative.state_dict())
        if self.previous is not None:
            state['previous'] = self.previous.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        side = int(state.get('canonical_short_side', 0)) or None
        stride = int(state.get('canonical_stride', self.canonical_stride))
        if side != self.canonical_short_side or stride != self.canonical_stride:
            raise ValueError(
                f'the checkpoint was trained with OAAHook canonical_short_side='
                f'{side}, canonical_stride={stride}; this config has '
                f'{self.canonical_short_side}, {self.canonical_stride}')
        self.cumulative.load_state_dict(state['cumulative'])
        if 'previous' in state:
            if self.previous is None:
                self.previous = AttentionStore('last')
            self.previous.load_state_dict(state['previous'])
        self.ori_shapes = {
            str(i): (int(s[0]), int(s[1]))
            for i, s in zip(state['image_ids'], state['ori_shapes'])
        }
        self._new_shapes = {}
        self.num_classes = int(state.get('num_classes', 0)) or self.num_classes

    def state_summary(self) -> str:
        return (f'{len(self.cumulative)} cumulative maps of '
                f'{len(self.ori_shapes)} images')

    # ---------------------------------------------------------------- export
    def export(self, out_dir: str, ids: Optional[List[str]] = None) -> int:
        """Write the cumulative maps as CAM files; each rank writes its share."""
        from mmwsss.evaluation.attention_export import export_attention_maps
        rank, world = get_dist_info()
        ids = sorted(self.ori_shapes) if ids is None else sorted(ids)
        return export_attention_maps(
            self.cumulative.by_image(),
            self.ori_shapes,
            int(self.num_classes),
            out_dir,
            ids=ids[rank::world],
            interpolation=self.export_interpolation)
