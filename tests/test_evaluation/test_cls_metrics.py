"""mmwsss's ``MultiLabelMAPMetric`` against MMPretrain's ``AveragePrecision``.

Both compute the non-interpolated AP per class (mean precision at the ranks of the
positives, samples labelled -1 left out). This module documents where they give the
same number and where they do not, which is why mmwsss configs keep
``MultiLabelMAPMetric`` (see its docstring):

(a) every class has positives, no ties: equal;
(b) a positive and a negative tie: MMPretrain ranks ties by ``torch.argsort``
    (unstable), ours by dataset order (stable): they can differ;
(c) a class without a positive image: MMPretrain counts AP 0 in the mean, ours
    skips the class: they differ by ``100 / K`` points per such class (scaled);
(d) difficult (-1) labels: both leave them out: equal.

Both read the data samples packed by ``PackWSSSInputs`` (``gt_score`` = the multi-hot
vector, the field MMPretrain's multi-label metrics read).
"""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

from mmwsss.evaluation.metrics import MultiLabelMAPMetric, average_precision


def _mmpretrain_metric(**kwargs):
    """MMPretrain's AveragePrecision built from an mmwsss config entry."""
    init_default_scope('mmwsss')
    from mmwsss.registry import METRICS
    return METRICS.build(
        dict(type='mmpretrain.AveragePrecision', prefix='cls', **kwargs))


def _run(metric, scores, labels, gt_key):
    evaluator = Evaluator(metric)
    for s, lab in zip(scores, labels):
        evaluator.process([{
            'pred_score': torch.as_tensor(s, dtype=torch.float32),
            gt_key: torch.as_tensor(lab, dtype=torch.float32)
        }])
    return evaluator.evaluate(len(scores))


def _both(scores, labels):
    """(ours, MMPretrain's) mAP; each fed the data samples it expects."""
    ours = _run(MultiLabelMAPMetric(), scores, labels, 'gt_label')['cls/mAP']
    theirs = _run(_mmpretrain_metric(), scores, labels,
                  'gt_score')['cls/mAP']
    return ours, theirs


def _per_class_mmpretrain(scores, labels):
    return _run(_mmpretrain_metric(average=None), scores, labels,
                'gt_score')['cls/AP_classwise']


def _voc_like(seed=0, n=60, k=20):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, k)) < 0.2).astype(np.float32)
    labels[rng.integers(0, n, k), np.arange(k)] = 1  # every class has positives
    logits = rng.normal(size=(n, k)) + 2 * labels
    scores = torch.sigmoid(torch.from_numpy(logits)).float().numpy()
    assert all(len(np.unique(scores[:, c])) == n for c in range(k))  # no ties
    return scores, labels


def test_mmpretrain_scope_prefix_builds_from_mmwsss():
    from mmpretrain.evaluation import AveragePrecision
    metric = _mmpretrain_metric()
    assert type(metric) is AveragePrecision
    assert metric.prefix == 'cls'


@pytest.mark.parametrize('seed', range(3))
def test_a_all_classes_positive_no_ties_equal(seed):
    scores, labels = _voc_like(seed)
    ours, theirs = _both(scores, labels)
    # ours is rounded to 2 decimals, MMPretrain's is not
    assert ours == pytest.approx(theirs, abs=0.005 + 1e-6)
    # per class: equal to float32 precision
    ref = [average_precision(scores[:, c], labels[:, c]) * 100
           for c in range(labels.shape[1])]
    np.testing.assert_allclose(_per_class_mmpretrain(scores, labels), ref,
                               rtol=1e-5)


def test_a_packed_wsss_samples_feed_both_metrics():
    """``PackWSSSInputs`` output (through ``to_dict`` as the Evaluator does) is read
    by both metrics: ours via ``gt_score``/``gt_label``, MMPretrain's via
    ``gt_score``."""
    from mmwsss.datasets.transforms import PackWSSSInputs
    scores, labels = _voc_like(seed=5, n=30, k=5)
    pack = PackWSSSInputs()
    ev_ours = Evaluator(MultiLabelMAPMetric())
    ev_theirs = Evaluator(_mmpretrain_metric())
    for s, lab in zip(scores, labels):
        ds = pack.transform(
            dict(img=np.zeros((4, 4, 3), np.uint8), gt_label=lab, img_id='x',
                 img_shape=(4, 4), ori_shape=(4, 4)))['data_samples']
        torch.testing.assert_close(ds.gt_score, ds.gt_label)
        ds.pred_score = torch.from_numpy(s)
        ev_ours.process([ds])
        ev_theirs.process([ds])
    ours = ev_ours.evaluate(len(scores))['cls/mAP']
    theirs = ev_theirs.evaluate(len(scores))['cls/mAP']
    assert ours == pytest.approx(theirs, abs=0.005 + 1e-6)


def test_ours_reads_mmpretrain_samples():
    """An MMPretrain ``DataSample`` (gt_label = class indices, gt_score = multi-hot)
    is read through ``gt_score``."""
    from mmpretrain.structures import DataSample
    scores, labels = _voc_like(seed=2, n=20, k=4)
    ev = Evaluator(MultiLabelMAPMetric())
    for s, lab in zip(scores, labels):
        ds = DataSample().set_gt_label(np.flatnonzero(lab).tolist())
        ds.set_gt_score(torch.from_numpy(lab)).set_pred_score(
            torch.from_numpy(s))
        ev.process([ds])
    ref = np.mean([average_precision(scores[:, c], labels[:, c])
                   for c in range(4)]) * 100
    assert ev.evaluate(len(scores))['cls/mAP'] == pytest.approx(
        round(ref, 2))


def _ap_in_order(order, labels):
    hits = np.asarray(labels)[order] > 0.5
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(precision[hits].mean())


def test_b_ties():
    """Ties between positives and negatives: ours ranks them in dataset order
    (stable); MMPretrain in the order ``torch.argsort`` gives, which for a tied block
    depends on the length of the list (with torch 2.x on CPU the order is stable for
    short lists only). Measured here: a class whose 6 top images (3 positive, 3
    negative, alternating) all score 1.0 gets AP 50.00 from ours whatever follows;
    MMPretrain gives 50.00 with 0 or 10 more (negative) images, 75.56 with 30 and 72.22
    with 60."""
    # float32 sigmoid saturates to exactly 1.0 (logits above about 16.7): images
    # with different logits get the same score
    logits = torch.tensor([20., 17., 40., 25., 30., 18.])
    top = torch.sigmoid(logits)
    assert (top == 1).all()
    y_top = np.array([0, 1, 0, 1, 0, 1], np.float32)
    theirs_by_size = {}
    for extra in (0, 10, 30, 60):
        s = np.concatenate(
            [top.numpy(), np.linspace(0.5, 0.1, extra, dtype=np.float32)])
        y = np.concatenate([y_top, np.zeros(extra, np.float32)])
        ours, theirs = _both(s[:, None], y[:, None])
        stable = np.argsort(-s, kind='stable')
        torch_order = torch.argsort(torch.from_numpy(s),
                                    descending=True).numpy()
        # ours: the stable order (ties keep the dataset order): 1/2 + 2/4 + 3/6
        assert ours == pytest.approx(round(_ap_in_order(stable, y) * 100, 2))
        assert ours == 50.0
        # MMPretrain: the order torch.argsort gives
        assert theirs == pytest.approx(_ap_in_order(torch_order, y) * 100,
                                       rel=1e-5)
        if not np.array_equal(y[stable], y[torch_order]):
            assert ours != pytest.approx(theirs, abs=0.01)
        else:
            assert ours == pytest.approx(theirs, abs=0.005 + 1e-6)
        theirs_by_size[extra] = round(theirs, 2)
    # both lie between the best and the worst order of the tied block
    best = _ap_in_order(np.arange(6)[np.argsort(-y_top, kind='stable')],
                        y_top) * 100
    worst = _ap_in_order(np.arange(6)[np.argsort(y_top, kind='stable')],
                         y_top) * 100
    assert all(worst - 1e-3 <= v <= best + 1e-3
               for v in theirs_by_size.values())
    # ties among positives only (or negatives only) do not matter: equal
    s = np.array([1.0] * 6 + [0.9, 0.8, 0.7, 0.6, 0.5, 0.4] * 5, np.float32)
    y = np.array([1] * 6 + [0, 1, 0, 0, 1, 0] * 5, np.float32)
    ours, theirs = _both(s[:, None], y[:, None])
    assert ours == pytest.approx(theirs, abs=0.005 + 1e-6)


def test_c_class_without_positive():
    scores, labels = _voc_like(seed=1, n=40, k=5)
    labels[:, 3] = 0  # class 3 absent from the evaluated images
    ours, theirs = _both(scores, labels)
    per_class = _per_class_mmpretrain(scores, labels)
    assert per_class[3] == 0  # MMPretrain: AP 0 for the absent class ...
    valid = [c for c in range(5) if c != 3]
    mean_valid = np.mean([per_class[c] for c in valid])
    assert theirs == pytest.approx(np.mean(per_class), rel=1e-6)  # ... in the mean
    # ours: the class is skipped, the mean is over the 4 others
    assert ours == pytest.approx(round(mean_valid, 2))
    # the difference: MMPretrain's mAP is scaled by (K - 1) / K
    assert theirs == pytest.approx(ours * 4 / 5, abs=0.01)
    assert ours - theirs > 10


def test_d_difficult_labels_ignored_by_both():
    scores, labels = _voc_like(seed=3, n=50, k=6)
    rng = np.random.default_rng(7)
    difficult = rng.random(labels.shape) < 0.15
    labels = labels.copy()
    labels[difficult] = -1
    assert (labels == 1).any(0).all()
    ours, theirs = _both(scores, labels)
    assert ours == pytest.approx(theirs, abs=0.005 + 1e-6)
    # and -1 really is left out (not counted as a negative)
    as_negative = np.where(labels < 0, 0, labels)
    ours_neg, _ = _both(scores, as_negative)
    assert ours_neg != pytest.approx(ours, abs=0.01)
