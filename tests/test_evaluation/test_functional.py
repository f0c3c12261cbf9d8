"""mmwsss.evaluation.functional: confusion matrices, per-class scores with MMSeg's NaN
convention, percent / NaN formatting and the result tables (hand-computed cases)."""
import math

import numpy as np
import pytest
import torch

from mmwsss.evaluation import functional as F

NAN = float('nan')

# 4 classes: 0 background, 1, 2 only predicted (never in the GT), 3 absent everywhere;
# 255 = ignore in the GT *and* in the prediction (a pseudo label's unlabelled pixel)
GT = np.array([[0, 0, 1, 1],
               [0, 1, 1, 255],
               [255, 0, 0, 1]], np.uint8)
PRED = np.array([[0, 1, 1, 1],
                 [2, 1, 0, 0],
                 [1, 255, 0, 1]], np.uint8)
# pairs (gt, pred) left after skipping 255 in either map:
# (0,0) x2, (0,1) x1, (0,2) x1, (1,1) x4, (1,0) x1  -> 9 pixels
CONF = np.array([[2, 1, 1, 0],
                 [1, 4, 0, 0],
                 [0, 0, 0, 0],
                 [0, 0, 0, 0]])


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a, float), np.asarray(b, float))


def test_confusion_matrix_by_hand():
    conf = F.confusion_matrix(PRED, GT, 4)
    assert conf.dtype == np.int64 and conf.shape == (4, 4)
    _same(conf, CONF)
    # rows are GT, columns prediction: transposing the inputs transposes it
    _same(F.confusion_matrix(GT, PRED, 4), CONF.T)
    # matrices of images add up
    both = F.confusion_matrix(np.stack([PRED, PRED]), np.stack([GT, GT]), 4)
    _same(both, 2 * CONF)


def test_confusion_matrix_ignore_index():
    # another ignore label: 255 is then an (out-of-range) label
    with pytest.raises(ValueError, match='label value 255 is out of range'):
        F.confusion_matrix(PRED, GT, 4, ignore_index=9)
    gt = np.where(GT == 255, 9, GT)
    pred = np.where(PRED == 255, 9, PRED)
    _same(F.confusion_matrix(pred, gt, 4, ignore_index=9), CONF)
    # no ignore label at all: every pixel counts
    conf = F.confusion_matrix(np.array([0, 1, 1]), np.array([1, 1, 0]), 2,
                              ignore_index=None)
    _same(conf, [[0, 1], [1, 1]])
    # only ignored pixels: an all-zero matrix
    _same(F.confusion_matrix(np.full(3, 255), np.arange(3), 3), np.zeros((3, 3)))


@pytest.mark.parametrize('pred,gt', [([0, 4], [0, 1]), ([0, 1], [4, 1]),
                                     ([-1, 1], [0, 1])])
def test_confusion_matrix_out_of_range(pred, gt):
    with pytest.raises(ValueError, match='out of range for 4 classes'):
        F.confusion_matrix(np.array(pred), np.array(gt), 4)


def test_confusion_matrix_shapes_must_agree():
    with pytest.raises(ValueError, match='differs from GT shape'):
        F.confusion_matrix(np.zeros((2, 3), int), np.zeros((3, 2), int), 2)


def test_per_class_scores_by_hand():
    s = F.per_class_scores(CONF)
    # TP = [2, 4, 0, 0], GT pixels = [4, 5, 0, 0], predicted = [3, 5, 1, 0]
    _same(s['iou'], [2 / 5, 4 / 6, 0.0, NAN])  # class 2 only predicted: IoU 0
    _same(s['precision'], [2 / 3, 4 / 5, 0.0, NAN])
    _same(s['recall'], [2 / 4, 4 / 5, NAN, NAN])  # class 2 absent from the GT
    # class 3 (absent everywhere) is left out of the mean; class 2 counts as 0
    miou = F.nanmean(s['iou'])
    assert isinstance(miou, float)
    assert miou == pytest.approx((2 / 5 + 4 / 6 + 0) / 3)
    assert F.pixel_accuracy(CONF) == pytest.approx(6 / 9)


def test_scores_of_a_stack_of_matrices():
    stack = np.stack([CONF, np.eye(4, dtype=int), np.zeros((4, 4), int)])
    s = F.per_class_scores(stack)
    assert s['iou'].shape == (3, 4)
    _same(s['iou'][0], F.per_class_scores(CONF)['iou'])
    _same(s['iou'][1], [1, 1, 1, 1])
    assert np.isnan(s['iou'][2]).all()
    miou = F.nanmean(s['iou'], axis=1)
    assert miou[0] == pytest.approx((2 / 5 + 4 / 6) / 3)
    assert miou[1] == 1 and math.isnan(miou[2])  # no class defined: NaN
    _same(F.pixel_accuracy(stack), [6 / 9, 1, NAN])
    with pytest.raises(ValueError, match=r'\(\.\.\., C, C\)'):
        F.per_class_scores(np.zeros((2, 3)))


def test_nanmean_and_ratio_edge_cases():
    with np.errstate(all='raise'):  # no warning, no error for undefined values
        assert math.isnan(F.nanmean([NAN, NAN]))
        assert math.isnan(F.nanmean([]))
        assert math.isnan(F.ratio(0, 0)) and math.isnan(F.ratio(5, 0))
        assert F.ratio(1, 4) == 0.25
        _same(F.ratio([1, 0, 2], [2, 0, 0]), [0.5, NAN, NAN])
    values = np.random.default_rng(0).random((5, 23))
    values[values < 0.3] = np.nan
    values[2] = np.nan
    with np.errstate(invalid='ignore'), pytest.warns(RuntimeWarning):
        ref = np.nanmean(values, axis=1)  # warns on the all-NaN row
    _same(F.nanmean(values, axis=1), ref)  # bit-identical to numpy's nanmean


def test_matches_mmseg_iou_metric():
    """Same IoU / precision / recall / aAcc / mIoU as MMSeg's IoUMetric (GT ignore
    only: MMSeg's predictions have no ignore label)."""
    from mmseg.evaluation import IoUMetric
    rng = np.random.default_rng(3)
    c = 6
    gt = rng.integers(0, c - 1, (40, 50))  # class c - 1 never in the GT
    gt[rng.random(gt.shape) < 0.1] = 255
    gt[gt == 2] = 0  # class 2 only predicted
    pred = rng.integers(0, c - 2, (40, 50))  # class c - 2, c - 1 never predicted
    areas = IoUMetric.intersect_and_union(
        torch.from_numpy(pred), torch.from_numpy(gt), c, 255)
    with np.errstate(invalid='ignore'):
        ref = IoUMetric.total_area_to_metrics(*areas,
                                              metrics=['mIoU', 'mFscore'])
    conf = F.confusion_matrix(pred, gt, c)
    s = F.per_class_scores(conf)
    np.testing.assert_allclose(s['iou'], ref['IoU'], rtol=1e-6)
    np.testing.assert_allclose(s['recall'], ref['Acc'], rtol=1e-6)
    np.testing.assert_allclose(s['precision'], ref['Precision'], rtol=1e-6)
    assert F.pixel_accuracy(conf) == pytest.approx(float(ref['aAcc']))
    assert F.nanmean(s['iou']) == pytest.approx(float(np.nanmean(ref['IoU'])))
    assert np.isnan(s['iou']).tolist() == np.isnan(ref['IoU']).tolist()
    # absent everywhere: NaN; only predicted (2) or never predicted (4): 0
    assert np.isnan(s['iou']).tolist() == [False] * (c - 1) + [True]
    assert s['iou'][2] == 0 and s['iou'][c - 2] == 0
    assert np.isnan(s['recall']).tolist() == np.isnan(ref['Acc']).tolist()
    assert np.isnan(s['recall'][[2, c - 1]]).all()
    assert np.isnan(s['precision'][[c - 2, c - 1]]).all()


def test_percent_formatting():
    assert F.format_percent(0.468) == '46.80'
    assert F.format_percent(np.float32(0.5)) == '50.00'
    assert F.format_percent(1) == '100.00'
    assert F.format_percent(NAN) == 'n/a'
    assert F.format_percent(None) == 'n/a'
    assert F.format_percent(np.nan, 'nan') == 'nan'
    assert F.format_percent(NAN, 'n/a (no GT pixel)') == 'n/a (no GT pixel)'
    assert F.format_percent(0.12345, digits=3) == '12.345'
    assert F.format_percent(46.8049, fraction=False) == '46.80'
    assert F.percent_cells([0.25, NAN, 0.0], 'nan') == ['25.00', 'nan', '0.00']
    assert F.is_undefined(None) and F.is_undefined(np.float64('nan'))
    assert not F.is_undefined(0.0) and not F.is_undefined('n/a')


def test_percent_values():
    assert F.percent_or_none(0.123456789) == 12.3457
    assert F.percent_or_none(np.float64(0.5)) == 50.0
    assert F.percent_or_none(NAN) is None and F.percent_or_none(None) is None
    assert F.percent_or_none(0.123456789, ndigits=2) == 12.35
    assert F.round_percent(0.468049) == 46.8
    assert isinstance(F.round_percent(np.float64(0.5)), float)
    assert math.isnan(F.round_percent(NAN))


def test_class_table_has_names_and_values():
    scores = dict(class_names=['background', 'cat', 'dog', 'cow'],
                  **F.per_class_scores(CONF))
    text = F.format_class_table(scores)
    lines = text.splitlines()
    header = [c.strip() for c in lines[1].strip('|').split('|')]
    assert header == ['Class', 'IoU', 'Precision', 'Recall']
    rows = {}
    for line in lines[3:-1]:
        cells = [c.strip() for c in line.strip('|').split('|')]
        rows[cells[0]] = cells[1:]
    assert rows == {
        'background': ['40.00', '66.67', '50.00'],
        'cat': ['66.67', '80.00', '80.00'],
        'dog': ['0.00', '0.00', 'n/a'],
        'cow': ['n/a', 'n/a', 'n/a'],
    }
    assert 'nan' not in text
    # another word for undefined scores, extra (pre-formatted) columns
    text = F.format_class_table(scores, 'nan',
                                [('Extra', ['-', 'x', 'y', 'z'])])
    assert text.splitlines()[1].split('|')[-2].strip() == 'Extra'
    cells = [c.strip() for c in text.splitlines()[-2].strip('|').split('|')]
    assert cells == ['cow', 'nan', 'nan', 'nan', 'z']


def test_format_table_keeps_cells_and_order():
    text = F.format_table([('threshold', ['0.05', '0.10']),
                           ('mIoU', F.percent_cells([0.5, NAN], 'nan'))])
    assert text.splitlines()[1].split() == ['|', 'threshold', '|', 'mIoU', '|']
    assert '|    0.05   | 50.00 |' in text and '|    0.10   |  nan  |' in text
