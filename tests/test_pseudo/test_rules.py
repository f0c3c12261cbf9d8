"""CAM -> pseudo-label rules (docs/pseudo_labels.md, section 'Rules': OAA's
``gen_gt.py``, EDAM's Alg. 1 / ``eval.py``, irn's and VWL's threshold and CRF rules)."""
import numpy as np
import pytest

import mmwsss.pseudo  # noqa: F401  (registers the rules)
from mmwsss.pseudo import (BasePseudoLabelRule, ConfidentRegions, DenseCRF,
                           EDAMSaliency, SaliencyBackground,
                           ThresholdBackground, build_pseudo_label_rule,
                           labels_to_ids, refine_labels_with_crf)
from mmwsss.registry import PSEUDO_LABEL_RULES
from mmwsss.utils.cam_io import CamRecord

NUM_CLASSES = 20

try:
    import pydensecrf.densecrf  # noqa: F401
    HAS_CRF = True
except ImportError:  # pragma: no cover
    HAS_CRF = False
needs_crf = pytest.mark.skipif(not HAS_CRF, reason='pydensecrf not installed')


def _record(k=2, h=24, w=32, seed=0, labels=None, minmax=True):
    rng = np.random.default_rng(seed)
    cams = rng.random((k, h, w)).astype(np.float32)
    if minmax and k:
        # like exported maps: each map spans exactly [0, 1]
        lo = cams.min(axis=(1, 2), keepdims=True)
        hi = cams.max(axis=(1, 2), keepdims=True)
        cams = (cams - lo) / (hi - lo)
    if labels is None:
        labels = np.sort(rng.choice(NUM_CLASSES, k, replace=False))
    return CamRecord(cams, np.asarray(labels, np.int64), NUM_CLASSES)


def _image(h=24, w=32, seed=0):
    return np.random.default_rng(seed + 100).integers(
        0, 256, (h, w, 3), dtype=np.uint8)


def _valid_ids(record, ignore=True):
    ids = {0} | {int(c) + 1 for c in record.labels}
    return ids | {255} if ignore else ids


def _check_values(out, record, ignore=True):
    assert out.dtype == np.uint8 and out.shape == record.shape
    assert set(np.unique(out).tolist()) <= _valid_ids(record, ignore)


# ------------------------------------------------------------------ helpers
def test_labels_to_ids():
    rec = _record(2, 2, 3, labels=[3, 7])
    idx = np.array([[0, 1, 2], [2, 1, 0]])
    assert labels_to_ids(idx, rec).tolist() == [[0, 4, 8], [8, 4, 0]]
    with pytest.raises(ValueError, match='out of range'):
        labels_to_ids(idx + 1, rec)


@needs_crf
def test_refine_labels_with_crf_keeps_ignore():
    rec = _record(2, 20, 26, seed=1, labels=[0, 5])
    img = _image(20, 26)
    label = np.zeros((20, 26), np.uint8)
    label[5:15, 5:12] = 1
    label[5:15, 14:22] = 6
    label[:2] = 255
    out = refine_labels_with_crf(DenseCRF(iterations=5), img, label, rec)
    _check_values(out, rec)
    assert (out[:2] == 255).all() and (out[2:] != 255).all()
    assert refine_labels_with_crf(None, img, label, rec).tolist() == \
        label.tolist()
    bad = label.copy()
    bad[0, 0] = 3  # class 2 is not listed
    with pytest.raises(ValueError, match=r'\[3\]'):
        refine_labels_with_crf(DenseCRF(), img, bad, rec)


# ------------------------------------------------------- ThresholdBackground
def test_threshold_rule_and_ties():
    cams = np.array([[[0.9, 0.2, 0.5, 0.15, 0.4]],
                     [[0.1, 0.6, 0.5, 0.15, 0.4]]], np.float32)
    rec = CamRecord(cams, np.array([2, 5]), NUM_CLASSES)
    rule = ThresholdBackground(threshold=0.4)
    # ties: threshold == cam -> background; equal cams -> lower class
    assert rule(rec).tolist() == [[3, 6, 3, 0, 0]]
    assert ThresholdBackground(0.15)(rec).tolist() == [[3, 6, 3, 0, 3]]
    # the same as CamRecord.seed on random inputs
    rec = _record(3, seed=2)
    for t in (0.1, 0.3, 0.5):
        np.testing.assert_array_equal(ThresholdBackground(t)(rec),
                                      rec.seed(t))
    assert not rule.requires_image and not rule.requires_saliency


@needs_crf
@pytest.mark.parametrize('crf_unary,crf', [('softmax', 'vwl'),
                                           ('one_minus_max', 'psa'),
                                           ('labels', 'irn_label')])
def test_threshold_rule_with_crf(crf_unary, crf):
    rec = _record(2, 20, 28, seed=3)
    rule = ThresholdBackground(0.3, crf=crf, crf_unary=crf_unary)
    assert rule.requires_image
    out = rule(rec, image=_image(20, 28))
    _check_values(out, rec, ignore=False)
    with pytest.raises(ValueError, match='image is missing'):
        rule(rec)


@needs_crf
def test_threshold_crf_softmax_is_vwl():
    rec = _record(2, 16, 20, seed=4)
    img = _image(16, 20)
    crf = DenseCRF(iterations=10, gaussian=dict(sxy=1, compat=3),
                   bilateral=dict(sxy=64, srgb=3, compat=4))
    scores = np.concatenate([np.full((1, 16, 20), 0.15), rec.cams])
    e = np.exp(scores - scores.max(0))
    q = crf(img, e / e.sum(0))
    expect = labels_to_ids(q.argmax(0), rec)
    out = ThresholdBackground(0.15, crf='vwl', crf_unary='softmax')(
        rec, image=img)
    np.testing.assert_array_equal(out, expect)


def test_threshold_validation():
    with pytest.raises(ValueError, match="'bogus'"):
        ThresholdBackground(crf_unary='bogus')
    with pytest.raises(ValueError, match='nan'):
        ThresholdBackground(threshold=float('nan'))


# -------------------------------------------------------- SaliencyBackground
def _oaa_inputs(seed, h=40, w=48, k=2):
    rng = np.random.default_rng(seed)
    rec = _record(k, h, w, seed=seed)
    sal = rng.integers(0, 256, (h, w)).astype(np.uint8)
    # plenty of low-saliency / low-attention pixels for the background form
    sal[: h // 3] = rng.integers(0, 40, (h // 3, w))
    rec.cams[:, : h // 4] *= 0.85
    return rec, sal


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_oaa_closed_forms(seed):
    rec, sal = _oaa_inputs(seed)
    out = SaliencyBackground(min_fg_ratio=0)(rec, saliency=sal)
    _check_values(out, rec)
    S = sal.astype(np.float64)
    att = rec.cams.astype(np.float64)  # already min-max normalised
    amax = att.max(0)
    # background <=> S < 32 and max att <= 0.8
    np.testing.assert_array_equal(out == 0, (S < 32) & (amax <= 0.8))
    # class c <=> att_c >= 0.3, att_c is the class max (ties: lower class),
    # att_c > 1 - S/255 (or the bg score was zeroed) and <= 1 channel > 0.9
    bg = 1 - S / 255
    bg_z = np.where(bg < 0.3, 0, bg)
    conflict = (att > 0.9).sum(0) + (bg_z > 0.9)
    first_max = att.argmax(0)
    for i, c in enumerate(rec.labels):
        expect = ((att[i] >= 0.3) & (first_max == i) & (att[i] > bg_z)
                  & (conflict <= 1))
        np.testing.assert_array_equal(out == c + 1, expect)
    # everything else ignored
    assert ((out == 0) | (out == 255) | np.isin(out, rec.labels + 1)).all()
    assert out.min() == 0 and (out == 255).any() and (
        np.isin(out, rec.labels + 1)).any()


def test_oaa_conflicts_and_saliency():
    h, w = 4, 25
    cams = np.zeros((2, h, w), np.float32)
    cams[0, 0, 0] = cams[1, 0, 0] = 0.95   # two classes > 0.9 -> 255
    cams[0, 1, :] = 1.0                    # strong attention where S = 0
    cams[1, 2, 0] = 1.0                    # keep maps non-constant
    sal = np.zeros((h, w), np.uint8)
    cams[0, 2, 5:] = 0.7                   # salient object of class 4
    sal[2, 5:] = 255
    sal[3, 0] = 200                        # salient, no attention -> 255
    sal[3, 1] = 31                         # below 32 -> background
    rec = CamRecord(cams, np.array([4, 9]), NUM_CLASSES)
    out = SaliencyBackground()(rec, saliency=sal)
    assert out[0, 0] == 255
    assert out[3, 0] == 255
    assert out[3, 1] == 0
    # S = 0 -> background score 1 > any attention: never foreground
    assert (out[sal == 0] != 5).all() and (out[sal == 0] != 10).all()
    assert (out[1] == 255).all()  # S = 0, att = 1 > 0.8: neither bg nor fg
    assert (out[2, 5:] == 5).all()
    rng = np.random.default_rng(0)
    for seed in range(3):
        rec, sal = _oaa_inputs(seed)
        sal[rng.random(sal.shape) < 0.3] = 0
        out = SaliencyBackground(min_fg_ratio=0)(rec, saliency=sal)
        assert not np.isin(out[sal == 0], rec.labels + 1).any()


def test_oaa_small_foreground_and_no_class():
    h, w = 20, 20
    cams = np.zeros((1, h, w), np.float32)
    cams[0, 0, :3] = 1.0  # 3 of 400 pixels = 0.75 % < 1 %
    sal = np.zeros((h, w), np.uint8)
    sal[0, :3] = 255
    rec = CamRecord(cams, np.array([2]), NUM_CLASSES)
    assert (SaliencyBackground()(rec, saliency=sal) == 255).all()
    cams[0, 0, :4] = 1.0  # exactly 1 %: kept
    sal[0, :4] = 255
    out = SaliencyBackground()(CamRecord(cams, np.array([2]), NUM_CLASSES),
                               saliency=sal)
    assert (out[0, :4] == 3).all() and (out[1:] == 0).all()
    empty = CamRecord(np.zeros((0, h, w), np.float32), np.zeros(0, np.int64),
                      NUM_CLASSES)
    assert (SaliencyBackground()(empty, saliency=sal) == 255).all()


def test_oaa_float_saliency_and_minmax():
    rec, sal = _oaa_inputs(5)
    ref = SaliencyBackground(min_fg_ratio=0)(rec, saliency=sal)
    out = SaliencyBackground(min_fg_ratio=0)(
        rec, saliency=sal.astype(np.float64) / 255)
    np.testing.assert_array_equal(out, ref)
    # per-map min-max: an affine rescale of the maps changes nothing
    rec2 = CamRecord(rec.cams * 0.5 + 0.2, rec.labels, NUM_CLASSES)
    np.testing.assert_array_equal(
        SaliencyBackground(min_fg_ratio=0)(rec2, saliency=sal), ref)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        SaliencyBackground()(rec, saliency=sal.astype(np.float32))


@needs_crf
def test_oaa_with_crf():
    rec, sal = _oaa_inputs(6, 24, 30)
    rule = SaliencyBackground(min_fg_ratio=0, crf='irn_label')
    assert rule.requires_image and rule.requires_saliency
    base = SaliencyBackground(min_fg_ratio=0)(rec, saliency=sal)
    out = rule(rec, image=_image(24, 30), saliency=sal)
    _check_values(out, rec)
    np.testing.assert_array_equal(out == 255, base == 255)


# -------------------------------------------------------------- EDAMSaliency
def test_edam_rule_code_semantics():
    # 1 x 4 toy, two listed classes (the four cases of EDAM Alg. 1), on the CAMs
    cams = np.array([[[0.6, 0.1, 0.97, 0.9]], [[0.3, 0.2, 0.5, 0.1]]],
                    np.float32)
    rec = CamRecord(cams, np.array([1, 6]), NUM_CLASSES)
    sal = np.array([[200, 200, 10, 10]], np.uint8)
    rule = EDAMSaliency(apply_on='cam')
    assert not rule.requires_image and rule.requires_saliency
    # salient & m >= α -> class; salient & weak -> 0;
    # non-salient & m > β -> class (pop-up); non-salient & m <= β -> 0
    assert rule(rec, saliency=sal).tolist() == [[2, 0, 2, 0]]
    # α = 0, β = 1: plain saliency masking
    plain = EDAMSaliency(alpha=0, beta=1, apply_on='cam')(rec, saliency=sal)
    assert plain.tolist() == [[2, 7, 0, 0]]


def test_edam_zero_scores_are_background():
    """alpha = 0: a salient pixel whose class scores are all 0 has no class and
    is background (the official rule), not the first listed class (argmax of
    zeros); a positive score, however small, still gives its class."""
    cams = np.array([[[0.0, 0.0, 1e-4, 0.0]], [[0.0, 0.3, 0.0, 0.0]]],
                    np.float32)
    rec = CamRecord(cams, np.array([2, 5]), NUM_CLASSES)
    sal = np.array([[255, 255, 255, 0]], np.uint8)
    for beta in (0.0, 1.0):
        out = EDAMSaliency(alpha=0, beta=beta, apply_on='cam')(rec, saliency=sal)
        assert out.tolist() == [[0, 6, 3, 0]], beta
    # default alpha: the zero pixel was background already
    out = EDAMSaliency(apply_on='cam')(rec, saliency=sal)
    assert out.tolist() == [[0, 6, 0, 0]]


def test_edam_theta_is_inclusive_and_ties():
    cams = np.array([[[0.5, 0.5, 0.99]], [[0.5, 0.1, 0.99]]], np.float32)
    rec = CamRecord(cams, np.array([3, 4]), NUM_CLASSES)
    rule = EDAMSaliency(theta=20, apply_on='cam')
    # Sal = 20 is non-salient (<=), Sal = 21 salient; equal maps -> lower class
    out = rule(rec, saliency=np.array([[20, 21, 20]], np.uint8))
    assert out.tolist() == [[0, 4, 4]]


@needs_crf
def test_edam_with_crf():
    rec = _record(2, 20, 28, seed=7)
    sal = np.random.default_rng(7).integers(0, 256, (20, 28)).astype(np.uint8)
    img = _image(20, 28)
    rule = EDAMSaliency()
    assert rule.requires_image and rule.crf.iterations == 3
    out = rule(rec, image=img, saliency=sal)
    _check_values(out, rec, ignore=False)
    q = rule.crf(img, np.concatenate([1 - rec.cams.max(0, keepdims=True),
                                      rec.cams]))[1:]
    m, c = q.max(0), q.argmax(0)
    keep = np.where(sal <= 20, m > 0.95, m >= 0.25)
    np.testing.assert_array_equal(out, np.where(keep, rec.labels[c] + 1, 0))
    empty = CamRecord(np.zeros((0, 20, 28), np.float32),
                      np.zeros(0, np.int64), NUM_CLASSES)
    assert not rule(empty, image=img, saliency=sal).any()
    with pytest.raises(ValueError, match='crf=None'):
        EDAMSaliency(crf=None)


# ---------------------------------------------------------- ConfidentRegions
def test_confident_regions_band():
    cams = np.array([[[0.5, 0.2, 0.02, 0.3, 0.05]]], np.float32)
    rec = CamRecord(cams, np.array([11]), NUM_CLASSES)
    out = ConfidentRegions(0.30, 0.05, crf=None)(rec)
    # > 0.30 -> class; (0.05, 0.30] -> ignore; <= 0.05 -> background
    assert out.tolist() == [[12, 255, 0, 255, 0]]
    rec = _record(3, seed=8)
    out = ConfidentRegions(crf=None)(rec)
    m = rec.cams.max(0)
    np.testing.assert_array_equal(out == 0, m <= 0.05)
    np.testing.assert_array_equal(out == 255, (m > 0.05) & (m <= 0.30))
    with pytest.raises(ValueError, match='bg_threshold'):
        ConfidentRegions(0.1, 0.2)


@needs_crf
def test_confident_regions_with_crf():
    rec = _record(2, 20, 28, seed=9)
    out = ConfidentRegions()(rec, image=_image(20, 28))
    _check_values(out, rec)


# -------------------------------------------------------- common behaviour
def test_no_listed_class():
    empty = CamRecord(np.zeros((0, 8, 9), np.float32), np.zeros(0, np.int64),
                      NUM_CLASSES)
    sal = np.zeros((8, 9), np.uint8)
    img = _image(8, 9)
    assert not ThresholdBackground()(empty).any()
    assert not ThresholdBackground(crf='psa', crf_unary='one_minus_max')(
        empty, image=img).any()
    assert (SaliencyBackground()(empty, saliency=sal) == 255).all()
    assert not EDAMSaliency()(empty, image=img, saliency=sal).any()
    assert not ConfidentRegions()(empty, image=img).any()


def test_missing_inputs_and_size_mismatch():
    rec = _record(2, 10, 12)
    with pytest.raises(ValueError, match='saliency map is missing'):
        SaliencyBackground()(rec)
    with pytest.raises(ValueError, match='saliency map is missing'):
        EDAMSaliency(apply_on='cam')(rec)
    with pytest.raises(ValueError, match='image is missing'):
        EDAMSaliency()(rec, saliency=np.zeros((10, 12), np.uint8))
    with pytest.raises(ValueError, match=r'\(10, 13\).*\(10, 12\)'):
        SaliencyBackground()(rec, saliency=np.zeros((10, 13), np.uint8))
    with pytest.raises(ValueError, match=r'\(9, 12\).*\(10, 12\)'):
        ConfidentRegions()(rec, image=_image(9, 12))
    with pytest.raises(ValueError, match=r'\[0, 255\]'):
        SaliencyBackground()(rec, saliency=np.full((10, 12), 300, np.int32))


def test_registry_build():
    rule = PSEUDO_LABEL_RULES.build(dict(type='SaliencyBackground'))
    assert isinstance(rule, SaliencyBackground)
    for name in ('ThresholdBackground', 'EDAMSaliency', 'ConfidentRegions'):
        assert isinstance(build_pseudo_label_rule(dict(type=name)),
                          BasePseudoLabelRule)
    rule = build_pseudo_label_rule(
        dict(type='ThresholdBackground', threshold=0.2,
             crf=dict(preset='vwl', iterations=2), crf_unary='softmax'))
    assert rule.crf.iterations == 2 and rule.threshold == 0.2
    assert build_pseudo_label_rule(rule) is rule
    with pytest.raises(TypeError):
        build_pseudo_label_rule('ThresholdBackground')
