"""Seed sweep core, SeedIoUMetric (vs MMSeg's IoUMetric) and MultiLabelMAPMetric."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample

from mmwsss.evaluation.metrics import (DEFAULT_THRESHOLDS, MultiLabelMAPMetric,
                                       SeedIoUMetric, average_precision,
                                       confusions_from_histogram,
                                       per_threshold_loop, seed_scores,
                                       sweep_histogram)
from mmwsss.utils.cam_io import CamRecord


def _random_case(rng, k, h=13, w=17, quantize=True, negative=False):
    """Dense CAMs with absent (all-zero) classes, ties and ignore pixels."""
    cams = rng.random((k, h, w)).astype(np.float32)
    if quantize:  # multiples of 0.05: ties between classes and with thresholds
        cams = (np.round(cams * 20) / 20).astype(np.float32)
    if negative:
        cams -= 0.3
    absent = rng.random(k) < 0.4
    cams[absent] = 0
    gt = rng.integers(0, k + 1, (h, w)).astype(np.uint8)
    gt[rng.random((h, w)) < 0.15] = 255
    return cams, gt


def test_default_thresholds():
    assert DEFAULT_THRESHOLDS.tolist() == [
        round(0.05 * i, 2) for i in range(1, 20)
    ]


@pytest.mark.parametrize('seed', range(6))
def test_one_pass_equals_loop(seed):
    rng = np.random.default_rng(seed)
    for k in (0, 1, 3, 8):
        for kwargs in (dict(), dict(quantize=False), dict(negative=True)):
            cams, gt = _random_case(rng, k, **kwargs)
            for thr in (DEFAULT_THRESHOLDS, [0.0, 0.5, 1.0], [0.3]):
                hist = sweep_histogram(cams, gt, thr, k)
                assert hist.shape == (len(thr) + 1, k + 1, k + 1)
                assert hist.sum() == (gt != 255).sum()
                np.testing.assert_array_equal(
                    confusions_from_histogram(hist),
                    per_threshold_loop(cams, gt, thr, k))


def test_one_pass_matches_cam_record_seed_and_float64():
    rng = np.random.default_rng(1)
    k = 5
    cams, gt = _random_case(rng, k)
    labels = np.flatnonzero(cams.reshape(k, -1).any(1))
    rec = CamRecord(cams[labels], labels, k)
    thr = DEFAULT_THRESHOLDS
    conf = confusions_from_histogram(sweep_histogram(cams, gt, thr, k))
    valid = gt != 255
    for j, t in enumerate(thr):
        seed = rec.seed(float(t))
        ref = np.bincount(gt[valid].astype(int) * (k + 1) + seed[valid],
                          minlength=(k + 1)**2).reshape(k + 1, k + 1)
        np.testing.assert_array_equal(conf[j], ref)
    # float64 CAMs are compared in float64, in both implementations
    cams64 = cams.astype(np.float64) + 1e-12
    np.testing.assert_array_equal(
        confusions_from_histogram(sweep_histogram(cams64, gt, thr, k)),
        per_threshold_loop(cams64, gt, thr, k))


def test_histograms_add_over_images():
    rng = np.random.default_rng(2)
    cases = [_random_case(rng, 4) for _ in range(3)]
    total = sum(sweep_histogram(c, g, None, 4) for c, g in cases)
    loop = sum(per_threshold_loop(c, g, None, 4) for c, g in cases)
    np.testing.assert_array_equal(confusions_from_histogram(total), loop)


def test_hand_computed_example():
    c0 = [[0.9, 0.2, 0.3], [0.5, 0.5, 0.0]]
    c1 = [[0.1, 0.6, 0.3], [0.5, 0.5, 0.7]]
    cams = np.array([c0, c1], np.float32)
    gt = np.array([[1, 2, 0], [255, 1, 2]], np.uint8)
    hist = sweep_histogram(cams, gt, [0.4, 0.6], 2)
    expect = np.zeros((3, 3, 3), np.int64)
    expect[2, 1, 1] = 1  # (0,0): m 0.9 > both thresholds, class 0 -> label 1
    expect[1, 2, 2] = 1  # (0,1): m 0.6, not > 0.6 (tie -> background)
    expect[0, 0, 0] = 1  # (0,2): class tie at 0.3 < 0.4 -> never foreground
    expect[1, 1, 1] = 1  # (1,1): class tie 0.5/0.5 -> first class (label 1)
    expect[2, 2, 2] = 1  # (1,2): m 0.7
    np.testing.assert_array_equal(hist, expect)
    conf = confusions_from_histogram(hist)
    np.testing.assert_array_equal(conf[0], np.diag([1, 2, 2]))
    np.testing.assert_array_equal(conf[1],
                                  [[1, 0, 0], [1, 1, 0], [1, 0, 1]])
    s = seed_scores(conf, [0.4, 0.6], ['bg', 'a', 'b'])
    np.testing.assert_allclose(s['miou'], [1.0, 4 / 9])
    np.testing.assert_allclose(s['iou_per_threshold'][1], [1 / 3, 0.5, 0.5])
    assert s['best_threshold'] == 0.4 and s['best_index'] == 0
    assert s['best_miou'] == 1.0
    assert s['class_names'] == ['bg', 'a', 'b']


def test_scores_nan_for_absent_classes():
    conf = np.zeros((1, 3, 3), np.int64)
    conf[0, 0, 0] = 4
    conf[0, 1, 0] = 2  # class 1 never predicted, class 2 absent everywhere
    s = seed_scores(conf, [0.5])
    assert s['iou'][0] == pytest.approx(4 / 6) and s['iou'][1] == 0
    assert np.isnan(s['iou'][2])
    assert np.isnan(s['precision'][1]) and s['recall'][1] == 0
    assert s['best_miou'] == pytest.approx((4 / 6 + 0) / 2)
    assert s['class_names'] == ['background', 'class 0', 'class 1']


def test_validation_errors():
    cams = np.zeros((2, 4, 5), np.float32)
    gt = np.zeros((4, 5), np.uint8)
    with pytest.raises(ValueError, match='strictly increasing'):
        sweep_histogram(cams, gt, [0.5, 0.3], 2)
    with pytest.raises(ValueError, match='strictly increasing'):
        sweep_histogram(cams, gt, [0.3, 0.3], 2)
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
        sweep_histogram(cams, gt, [0.5, 1.5], 2)
    with pytest.raises(ValueError, match='empty'):
        sweep_histogram(cams, gt, [], 2)
    with pytest.raises(ValueError, match=r'\(4, 5\).*\(4, 6\)'):
        sweep_histogram(cams, np.zeros((4, 6), np.uint8), None, 2)
    with pytest.raises(ValueError, match='num_classes'):
        sweep_histogram(cams, gt, None, 3)
    bad = gt.copy()
    bad[1, 2] = 7
    bad[0, 0] = 255  # ignore is fine
    with pytest.raises(ValueError, match='GT label 7'):
        sweep_histogram(cams, bad, None, 2)
    with pytest.raises(ValueError, match='GT label 7'):
        per_threshold_loop(cams, bad, None, 2)
    nan = cams.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        sweep_histogram(nan, gt, None, 2)


# ----------------------------------------------------------------- metrics
CLASSES = ('background', 'a', 'b', 'c', 'd', 'e')


def _samples(seed=0, n=4, k=5):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cams, gt = _random_case(rng, k, h=20 + i, w=24)
        out.append((cams, gt))
    return out


def test_seed_metric_equals_mmseg_iou_metric():
    thr = 0.3  # CAM values are multiples of 0.05: exact ties with float32(0.3)
    k = len(CLASSES) - 1
    seed_metric = SeedIoUMetric(thresholds=[thr])
    seed_metric.dataset_meta = dict(classes=CLASSES)
    iou_metric = IoUMetric(iou_metrics=['mIoU'])
    iou_metric.dataset_meta = dict(classes=CLASSES)
    for cams, gt in _samples():
        labels = np.flatnonzero(cams.reshape(k, -1).any(1))
        seed = CamRecord(cams[labels], labels, k).seed(thr)
        gt_t = torch.from_numpy(gt.astype(np.int64))[None]
        seed_metric.process({}, [
            dict(pred_cams=dict(data=torch.from_numpy(cams)),
                 gt_sem_seg=dict(data=gt_t))
        ])
        iou_metric.process({}, [
            dict(pred_sem_seg=dict(data=torch.from_numpy(seed.astype(
                np.int64))[None]),
                 gt_sem_seg=dict(data=gt_t))
        ])
    # per-class IoU
    inter, union = (sum(r[i] for r in iou_metric.results) for i in (0, 1))
    mmseg_iou = (inter / union).numpy()
    hist = seed_metric.total_histogram(seed_metric.results)
    ours = seed_scores(confusions_from_histogram(hist), [thr])
    np.testing.assert_allclose(ours['iou'], mmseg_iou, rtol=1e-6)
    # summary
    m_ours = seed_metric.compute_metrics(seed_metric.results)
    m_mmseg = iou_metric.compute_metrics(iou_metric.results)
    assert m_ours['mIoU'] == pytest.approx(m_mmseg['mIoU'], abs=1e-6)
    assert m_ours['mIoU@0.30'] == m_ours['mIoU']
    assert m_ours['best_threshold'] == thr


def test_seed_metric_through_evaluator():
    from mmwsss.registry import METRICS
    assert METRICS.get('SeedIoUMetric') is SeedIoUMetric
    assert METRICS.get('MultiLabelMAPMetric') is MultiLabelMAPMetric
    samples = _samples(seed=3, n=3)
    evaluator = Evaluator(SeedIoUMetric())
    evaluator.dataset_meta = dict(classes=CLASSES)
    for cams, gt in samples:
        ds = SegDataSample()
        ds.pred_cams = PixelData(data=torch.from_numpy(cams))
        ds.gt_sem_seg = PixelData(data=torch.from_numpy(gt.astype(np.int64))[None])
        evaluator.process([ds])
    res = evaluator.evaluate(len(samples))
    per_t = [res[f'seed/mIoU@{t:.2f}'] for t in DEFAULT_THRESHOLDS]
    assert res['seed/mIoU'] == max(per_t)
    assert res['seed/best_threshold'] == DEFAULT_THRESHOLDS[int(
        np.argmax(per_t))]
    # against the reference loop
    conf = sum(per_threshold_loop(c, g, None, 5) for c, g in samples)
    ref = seed_scores(conf, DEFAULT_THRESHOLDS)
    assert res['seed/mIoU'] == pytest.approx(
        round(ref['best_miou'] * 100, 2))


def test_seed_metric_class_count_error():
    metric = SeedIoUMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    cams = torch.zeros(3, 4, 4)
    with pytest.raises(ValueError, match='3 CAMs.*5 foreground'):
        metric.process({}, [
            dict(pred_cams=dict(data=cams),
                 gt_sem_seg=dict(data=torch.zeros(1, 4, 4, dtype=torch.long)),
                 img_id='x1')
        ])


def test_average_precision_hand_computed():
    # ranks of positives 1 and 3 -> (1/1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.6],
                             [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # ranks of positives 3 and 4 -> (1/3 + 2/4) / 2
    assert average_precision([0.6, 0.4, 0.3, 0.2],
                             [0, 0, 1, 1]) == pytest.approx(5 / 12)
    # positives at ranks 1 and 4 -> (1/1 + 2/4) / 2
    assert average_precision([0.6, 0.4, 0.3, 0.2],
                             [1, 0, 0, 1]) == pytest.approx(0.75)
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))
    # ignored (difficult) samples are left out of the ranking
    assert average_precision([0.9, 0.8, 0.7], [-1, 0, 1]) == pytest.approx(0.5)


def test_multilabel_map_metric():
    scores = np.array([[0.9, 0.6, 0.1], [0.8, 0.4, 0.2], [0.7, 0.3, 0.3],
                       [0.6, 0.2, 0.4]], np.float32)
    labels = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]],
                      np.float32)
    # class 0: 5/6; class 1: positive ranked 4th -> 1/4; class 2: no positive
    metric = Evaluator(MultiLabelMAPMetric())
    metric.dataset_meta = dict(classes=('background', 'x', 'y', 'z'))
    for s, lab in zip(scores, labels):
        metric.process([dict(pred_score=torch.from_numpy(s),
                             gt_label=torch.from_numpy(lab))])
    res = metric.evaluate(len(scores))
    assert res == {'cls/mAP': pytest.approx(round((5 / 6 + 1 / 4) / 2 * 100,
                                                  2))}
