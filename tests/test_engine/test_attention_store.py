import io

import numpy as np
import pytest
import torch

from mmwsss.engine.hooks.attention_store import AttentionStore


def test_max_fusion_is_monotone_and_first_map_initialises():
    rng = np.random.default_rng(0)
    s = AttentionStore('max')
    a1 = rng.random((4, 5))
    s.update('img1', 3, a1)
    np.testing.assert_allclose(s.get('img1', 3), a1, atol=0.5 / 255 + 1e-6)
    prev = s.get('img1', 3)
    for _ in range(5):
        s.update('img1', 3, rng.random((4, 5)))
        cur = s.get('img1', 3)
        assert (cur >= prev).all()  # Eq. 5: never decreases
        prev = cur
    assert s.count('img1', 3) == 6
    assert 0 <= prev.min() and prev.max() <= 1


def test_avg_fusion_is_running_mean():
    s = AttentionStore('avg')
    maps = [np.full((2, 2), v) for v in (0.2, 0.6, 1.0)]
    for m in maps:
        s.update('x', 0, m)
    np.testing.assert_allclose(s.get('x', 0), 0.6, atol=1 / 255)


def test_keyed_by_id_not_order():
    a = AttentionStore()
    b = AttentionStore()
    items = [('i%d' % k, k % 3, np.random.default_rng(k).random((3, 3)))
             for k in range(10)]
    for it in items:
        a.update(*it)
    for it in reversed(items):  # any visiting order gives the same state
        b.update(*it)
    assert a.keys() == b.keys()
    for k in a.keys():
        np.testing.assert_array_equal(a.get(*k), b.get(*k))


def test_state_round_trip_through_torch_weights_only():
    import mmwsss  # noqa: F401  (allow-lists numpy types for weights_only)
    s = AttentionStore('max')
    s.update('2007_000032', 14, np.random.default_rng(1).random((6, 7)))
    s.update('2007_000032', 0, np.zeros((6, 7)))
    s.update('2008_000002', 5, np.ones((3, 9)))
    buf = io.BytesIO()
    torch.save({'oaa': s.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf)['oaa']  # weights_only=True by default
    t = AttentionStore('max')
    t.load_state_dict(state)
    assert t.keys() == s.keys()
    for k in s.keys():
        np.testing.assert_array_equal(t.get(*k), s.get(*k))
        assert t.count(*k) == s.count(*k)
    with pytest.raises(ValueError, match='fusion'):
        AttentionStore('avg').load_state_dict(state)


def test_distributed_merge_equals_single_process():
    rng = np.random.default_rng(2)
    updates = [(f'im{k}', k % 2, rng.random((4, 4))) for k in range(8)] * 2
    single = AttentionStore()
    for u in updates:
        single.update(*u)
    ranks = [AttentionStore(), AttentionStore()]
    for epoch in range(2):
        for n, u in enumerate(updates[epoch * 8:(epoch + 1) * 8]):
            ranks[n % 2].update(*u)  # each rank gets its share
        dirty = [r.pop_dirty() for r in ranks]
        for r in ranks:
            for d in dirty:
                r.apply_entries(d)
    for r in ranks:
        assert r.keys() == single.keys()
        for k in single.keys():
            np.testing.assert_array_equal(r.get(*k), single.get(*k))


def test_errors_name_the_image():
    s = AttentionStore()
    s.update('a', 1, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="'a' class 1.*canonical"):
        s.update('a', 1, np.zeros((3, 2)))
    with pytest.raises(ValueError, match='NaN'):
        s.update('b', 0, np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match='fusion'):
        AttentionStore('mean')


def test_voc_aug_sized_state_under_150mb():
    """10,582 images x 1.5 classes at ~63x47 (VOC at output stride 8)."""
    per_map = 63 * 47
    assert 10582 * 1.5 * per_map / 2**20 < 150
    s = AttentionStore()
    for k in range(200):
        s.update(f'i{k}', 0, np.zeros((63, 47)))
    assert s.nbytes == 200 * per_map
