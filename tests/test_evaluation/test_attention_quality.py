"""Attention recall / noise at 50 % of the max (OAA, Jiang et al., TPAMI 2022, §4.3
"Quality of Cumulative Attention Maps", Tabs. 11 and 13)."""
import numpy as np

from mmwsss.evaluation.seed_eval import attention_counts, attention_quality
from mmwsss.utils.cam_io import CamRecord


def test_known_overlap_pooled_and_per_class():
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :5] = 1  # class 0: 50 pixels
    gt[0, 9] = 2  # class 1: 1 pixel
    gt[9, 9] = 255  # ignored
    cam0 = np.zeros((10, 10), np.float32)
    cam0[:, :4] = 1.0  # 40 px inside the GT
    cam0[:, 4:6] = 0.6  # 10 in (col 4), 10 out (col 5)
    cam0[:, 6:] = 0.4  # below half max: not counted
    cam1 = np.zeros((10, 10), np.float32)
    cam1[5, 5] = 1.0  # one wrong pixel, misses its GT pixel
    rec = CamRecord(cams=np.stack([cam0, cam1]), labels=np.array([0, 1]),
                    num_classes=3)
    counts = attention_counts(rec, gt, 255, np.zeros((3, 3), np.int64))
    assert counts[0].tolist() == [50, 60, 50]
    assert counts[1].tolist() == [0, 1, 1]
    assert counts[2].tolist() == [0, 0, 0]
    q = attention_quality(counts, ['a', 'b', 'c'])
    assert q['per_class_recall']['a'] == 1.0
    assert np.isclose(q['per_class_noise']['a'], 1 - 50 / 60)
    assert q['per_class_recall']['b'] == 0 and q['per_class_noise']['b'] == 1
    assert np.isnan(q['per_class_recall']['c'])
    # pooled over pixels, not the mean of the classes
    assert np.isclose(q['recall'], 50 / 51)
    assert np.isclose(q['noise'], 1 - 50 / 61)
    mean_of_classes = np.nanmean(list(q['per_class_recall'].values()))
    assert not np.isclose(q['recall'], mean_of_classes)


def test_all_zero_map_selects_nothing_and_ignore_pixels_skipped():
    gt = np.full((4, 4), 255, np.uint8)
    gt[0, 0] = 1
    rec = CamRecord(cams=np.zeros((1, 4, 4), np.float32), labels=np.array([0]),
                    num_classes=1)
    counts = attention_counts(rec, gt, 255, np.zeros((1, 3), np.int64))
    assert counts[0].tolist() == [0, 0, 1]
    rec = CamRecord(cams=np.ones((1, 4, 4), np.float32), labels=np.array([0]),
                    num_classes=1)
    counts = attention_counts(rec, gt, 255, np.zeros((1, 3), np.int64))
    assert counts[0].tolist() == [1, 1, 1]  # the 15 ignored pixels do not count
