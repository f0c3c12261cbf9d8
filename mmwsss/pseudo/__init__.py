"""CAM -> pseudo-label rules (stage [3]) and the dense CRF wrapper.

Rules (registered in ``PSEUDO_LABEL_RULES``):

* :class:`ThresholdBackground` -- constant background score (irn / VWL / EDAM (a)),
  optionally with a CRF (VWL softmax, PSA/EDAM ``1 - max``, irn labels);
* :class:`SaliencyBackground` -- OAA ``gen_gt.py`` (saliency background, conflicts
  ignored);
* :class:`EDAMSaliency` -- EDAM Alg. 1 on CRF marginals (pixel-wise, code form);
* :class:`ConfidentRegions` -- irn ``cam_to_ir_label`` confident fg / bg;
* :class:`GAINCues` -- GAIN's localization cues (20 % of each map's maximum,
  saliency background, the rest ignored).
"""
from typing import Union

from mmwsss.registry import PSEUDO_LABEL_RULES
from .base import BasePseudoLabelRule, labels_to_ids, refine_labels_with_crf
from .confident_regions import ConfidentRegions
from .dense_crf import CRF_PRESETS, DenseCRF, build_crf
from .edam_saliency import EDAMSaliency
from .gain_cues import GAINCues
from .saliency_background import SaliencyBackground
from .threshold_background import ThresholdBackground

__all__ = [
    'DenseCRF', 'CRF_PRESETS', 'build_crf', 'BasePseudoLabelRule',
    'labels_to_ids', 'refine_labels_with_crf', 'ThresholdBackground',
    'SaliencyBackground', 'EDAMSaliency', 'ConfidentRegions', 'GAINCues',
    'build_pseudo_label_rule'
]


def build_pseudo_label_rule(
        cfg: Union[dict, BasePseudoLabelRule]) -> BasePseudoLabelRule:
    """Build a rule from a config dict (``PSEUDO_LABEL_RULES.build``), or return
    a rule instance as is."""
    if isinstance(cfg, BasePseudoLabelRule):
        return cfg
    if not isinstance(cfg, dict):
        # mmengine ConfigDict is a dict subclass
        raise TypeError(f'a pseudo-label rule config must be a dict or a '
                        f'BasePseudoLabelRule, got {type(cfg).__name__}: '
                        f'{cfg!r}')
    if 'type' not in cfg:
        raise KeyError(f'pseudo-label rule config {cfg!r} has no "type"; '
                       f'registered: {sorted(PSEUDO_LABEL_RULES.module_dict)}')
    rule_type = cfg['type']
    cls = PSEUDO_LABEL_RULES.get(rule_type) if isinstance(rule_type, str) else \
        rule_type
    if cls is None:
        raise KeyError(f'unknown pseudo-label rule {rule_type!r}; registered: '
                       f'{sorted(PSEUDO_LABEL_RULES.module_dict)}')
    import inspect
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        allowed = [n for n in params if n != 'self']
        unknown = sorted(k for k in cfg
                         if k not in ('type', '_scope_') and k not in allowed)
        if unknown:
            raise ValueError(
                f'pseudo-label rule {cls.__name__} has no argument(s) {unknown} '
                f'(from pseudo_label_rule / --rule-options); its arguments: '
                f'{allowed}')
    return PSEUDO_LABEL_RULES.build(cfg)
