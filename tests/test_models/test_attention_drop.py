"""Tests of the OAA++ attention drop layer (OAA [T] §3.3, Alg. 1).

References: docs/methods/oaa.md, section 'References'.
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData

import mmwsss.models.layers  # noqa: F401  (registers AttentionDrop)
from mmwsss.models.layers import AttentionDrop
from mmwsss.registry import MODELS
from mmwsss.structures import WSSSDataSample


def _sample(img_shape=(8, 8), prev=None, drop_rand=None):
    meta = dict(img_id='x', img_shape=img_shape, ori_shape=img_shape)
    if drop_rand is not None:
        meta['drop_rand'] = drop_rand
    ds = WSSSDataSample(metainfo=meta)
    if prev is not None:
        ds.prev_attention = PixelData(data=prev)
    return ds


def _layer(**kwargs):
    return AttentionDrop(**kwargs).train()


def _drop(layer, inputs, data_samples=None):
    """The erased inputs of the batch augment (which returns (inputs, samples))."""
    out, samples = layer(inputs, data_samples)
    assert samples is data_samples
    return out


def _prev_map(h=8, w=8):
    """One class, attention 0.9 in the top-left quadrant, 0.3 elsewhere."""
    prev = torch.full((1, h, w), 0.3)
    prev[:, :h // 2, :w // 2] = 0.9
    return prev


def test_build_and_validation():
    layer = MODELS.build(dict(type='AttentionDrop'))
    assert isinstance(layer, AttentionDrop)
    assert layer.drop_prob == 0.5 and layer.threshold == 0.6
    assert layer.fill_value == 0.0
    layer = MODELS.build(
        dict(type='AttentionDrop', drop_prob=1.0, threshold=0.7))
    assert layer.drop_prob == 1.0 and layer.threshold == 0.7
    for bad in (-0.1, 1.5, float('nan'), 'x'):
        with pytest.raises(ValueError):
            AttentionDrop(drop_prob=bad)
    assert 'drop_prob=0.5' in repr(AttentionDrop())


def test_beta0_never_modifies():
    layer = _layer(drop_prob=0.0)
    x = torch.randn(2, 3, 8, 8)
    samples = [_sample(prev=torch.ones(1, 8, 8), drop_rand=0.0),
               _sample(prev=torch.ones(2, 8, 8))]
    for _ in range(20):
        assert _drop(layer, x, samples) is x
    for ds in samples:
        assert ds.metainfo['attention_dropped'] is False
        assert ds.metainfo['dropped_ratio'] == 0.0


def test_beta1_always_modifies_exact_mask():
    layer = _layer(drop_prob=1.0, threshold=0.6)
    x = torch.randn(1, 3, 8, 8)
    x_copy = x.clone()
    prev = _prev_map()
    for seed in range(10):
        torch.manual_seed(seed)
        ds = _sample(prev=prev)
        out = _drop(layer, x, [ds])
        assert out is not x
        mask = prev.amax(0) > 0.6
        assert torch.all(out[0][:, mask] == 0)
        assert torch.equal(out[0][:, ~mask], x[0][:, ~mask])
        assert ds.metainfo['attention_dropped'] is True
        assert ds.metainfo['dropped_ratio'] == pytest.approx(0.25)
    # never in place
    assert torch.equal(x, x_copy)


def test_strict_threshold_and_union_over_classes():
    layer = _layer(drop_prob=1.0, threshold=0.6)
    prev = torch.zeros(3, 4, 5)
    prev[0, 0, 0] = 0.6      # equal to delta: not dropped (strict >)
    prev[0, 1, 1] = 0.61     # class 0
    prev[1, 2, 3] = 1.0      # class 1
    prev[2, 3, 4] = 0.7      # class 2
    prev[2, 0, 4] = 0.59
    x = torch.randn(1, 3, 4, 5) + 5.0   # no accidental zeros
    ds = _sample(img_shape=(4, 5), prev=prev)
    out = _drop(layer, x, [ds])
    expected = torch.zeros(4, 5, dtype=torch.bool)
    expected[1, 1] = expected[2, 3] = expected[3, 4] = True
    dropped = (out[0] == 0).all(0)
    assert torch.equal(dropped, expected)
    assert torch.equal(out[0][:, ~expected], x[0][:, ~expected])
    assert ds.metainfo['dropped_ratio'] == pytest.approx(3 / 20)


def test_fill_value():
    layer = _layer(drop_prob=1.0, fill_value=-1.5)
    x = torch.randn(1, 3, 8, 8)
    out = _drop(layer, x, [_sample(prev=_prev_map())])
    assert torch.all(out[0, :, :4, :4] == -1.5)
    assert torch.equal(out[0, :, 4:, :], x[0, :, 4:, :])


def test_threshold_ge_one_drops_nothing():
    x = torch.randn(2, 3, 8, 8)
    for delta in (1.0, 1.5):
        layer = _layer(drop_prob=1.0, threshold=delta)
        samples = [_sample(prev=torch.ones(2, 8, 8)),
                   _sample(prev=_prev_map())]
        assert _drop(layer, x, samples) is x
        for ds in samples:
            assert ds.metainfo['dropped_ratio'] == 0.0


def test_no_previous_map_drops_nothing():
    layer = _layer(drop_prob=1.0)
    x = torch.randn(2, 3, 8, 8)
    samples = [_sample(), _sample(drop_rand=0.0)]
    assert _drop(layer, x, samples) is x
    for ds in samples:
        assert ds.metainfo['attention_dropped'] is False
        assert ds.metainfo['dropped_ratio'] == 0.0
    # mixed batch: only the image with a map is changed
    samples = [_sample(), _sample(prev=_prev_map())]
    out = _drop(layer, x, samples)
    assert torch.equal(out[0], x[0])
    assert torch.all(out[1, :, :4, :4] == 0)
    assert [ds.metainfo['attention_dropped'] for ds in samples] == [False, True]


def test_inactive_in_eval_and_without_samples():
    layer = AttentionDrop(drop_prob=1.0)
    x = torch.randn(1, 3, 8, 8)
    ds = _sample(prev=torch.ones(1, 8, 8))
    layer.eval()
    assert _drop(layer, x, [ds]) is x
    assert 'attention_dropped' not in ds.metainfo
    layer.train()
    assert _drop(layer, x, None) is x
    assert _drop(layer, x) is x
    assert _drop(layer, x, [ds]) is not x


def test_drop_frequency_matches_beta():
    beta, n = 0.5, 2000
    layer = _layer(drop_prob=beta)
    x = torch.randn(1, 3, 8, 8)
    prev = _prev_map()
    torch.manual_seed(0)
    count = 0
    for _ in range(n):
        ds = _sample(prev=prev)
        out = _drop(layer, x, [ds])
        changed = out is not x
        assert changed == ds.metainfo['attention_dropped']
        count += changed
    assert abs(count / n - beta) < 0.05


def test_seed_reproducible():
    layer = _layer(drop_prob=0.5)
    x = torch.randn(4, 3, 8, 8)
    prevs = [torch.rand(2, 8, 8) for _ in range(4)]

    def run(seed):
        torch.manual_seed(seed)
        outs, flags = [], []
        for _ in range(10):
            samples = [_sample(prev=p) for p in prevs]
            outs.append(_drop(layer, x, samples))
            flags.append([ds.metainfo['attention_dropped'] for ds in samples])
        return outs, flags

    outs1, flags1 = run(123)
    outs2, flags2 = run(123)
    assert flags1 == flags2
    assert all(torch.equal(a, b) for a, b in zip(outs1, outs2))
    # per-image draws: within 10 batches of 4 both outcomes occur
    all_flags = sum(flags1, [])
    assert any(all_flags) and not all(all_flags)


def test_drop_rand_meta_overrides_rng():
    layer = _layer(drop_prob=0.5)
    x = torch.randn(2, 3, 8, 8)
    prev = _prev_map()
    for seed in range(5):
        torch.manual_seed(seed)
        state = torch.get_rng_state()
        samples = [_sample(prev=prev, drop_rand=0.3),
                   _sample(prev=prev, drop_rand=0.7)]
        out = _drop(layer, x, samples)
        assert [ds.metainfo['attention_dropped'] for ds in samples] == [True, False]
        assert torch.all(out[0, :, :4, :4] == 0)
        assert torch.equal(out[1], x[1])
        # the supplied draws do not consume the global RNG
        assert torch.equal(torch.get_rng_state(), state)


def test_padded_batch_padding_untouched():
    layer = _layer(drop_prob=1.0, threshold=0.5)
    H, W = 10, 12
    x = torch.randn(2, 3, H, W) + 5.0
    # sample 0: 6x8 image, whole image above threshold
    # sample 1: 10x9 image, left half above threshold
    prev1 = torch.zeros(1, 10, 9)
    prev1[..., :4] = 0.8
    samples = [_sample(img_shape=(6, 8), prev=torch.ones(1, 6, 8)),
               _sample(img_shape=(10, 9), prev=prev1)]
    out = _drop(layer, x, samples)
    assert torch.all(out[0, :, :6, :8] == 0)
    assert torch.equal(out[0, :, 6:, :], x[0, :, 6:, :])
    assert torch.equal(out[0, :, :, 8:], x[0, :, :, 8:])
    assert torch.all(out[1, :, :, :4] == 0)
    assert torch.equal(out[1, :, :, 4:], x[1, :, :, 4:])
    assert samples[0].metainfo['dropped_ratio'] == pytest.approx(1.0)
    assert samples[1].metainfo['dropped_ratio'] == pytest.approx(4 / 9)


def test_feature_resolution_map_upsampled_bilinearly():
    layer = _layer(drop_prob=1.0, threshold=0.6)
    g = torch.Generator().manual_seed(0)
    prev = torch.rand(2, 4, 4, generator=g)
    x = torch.randn(1, 3, 40, 40) + 5.0   # padded batch; image is 32x32
    ds = _sample(img_shape=(32, 32), prev=prev)
    out = _drop(layer, x, [ds])
    up = F.interpolate(prev[None], size=(32, 32), mode='bilinear',
                       align_corners=False)[0]
    expected = torch.zeros(40, 40, dtype=torch.bool)
    expected[:32, :32] = up.amax(0) > 0.6
    assert expected.any() and not expected.all()
    dropped = (out[0] == 0).all(0)
    assert torch.equal(dropped, expected)
    assert torch.equal(out[0][:, ~expected], x[0][:, ~expected])
    assert ds.metainfo['dropped_ratio'] == pytest.approx(
        float((up.amax(0) > 0.6).float().mean()))
    # not the nearest-neighbour mask (the two differ for this map)
    near = F.interpolate(prev[None], size=(32, 32), mode='nearest')[0]
    assert not torch.equal(near.amax(0) > 0.6, up.amax(0) > 0.6)


def test_input_not_modified_in_place():
    layer = _layer(drop_prob=1.0)
    x = torch.randn(3, 3, 8, 8)
    x_copy = x.clone()
    samples = [_sample(prev=torch.ones(1, 8, 8)) for _ in range(3)]
    out = _drop(layer, x, samples)
    assert torch.all(out == 0)
    assert torch.equal(x, x_copy)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_mismatched_batch_raises():
    layer = _layer(drop_prob=1.0)
    with pytest.raises(ValueError):
        _drop(layer, torch.randn(2, 3, 8, 8), [_sample()])


def test_batch_augment_of_the_data_preprocessor():
    """Through WSSSDataPreProcessor: training only, after padding, the padding is
    untouched and every sample gets batch_input_shape."""
    import numpy as np

    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    pre = MODELS.build(
        dict(type='WSSSDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1],
             size_divisor=8, pad_val=7,
             batch_augments=[dict(type='AttentionDrop', drop_prob=1.0,
                                  threshold=0.5)]))
    assert isinstance(pre.find_augment(AttentionDrop), AttentionDrop)
    pre.train()
    imgs = [torch.full((3, 6, 5), 10.), torch.full((3, 8, 8), 10.)]
    samples = [_sample(img_shape=(6, 5), prev=torch.ones(1, 6, 5)),
               _sample(img_shape=(8, 8))]
    out = pre(dict(inputs=imgs, data_samples=samples), training=True)
    x = out['inputs']
    assert x.shape == (2, 3, 8, 8)
    assert torch.all(x[0, :, :6, :5] == 0)  # erased (fill 0)
    assert torch.all(x[0, :, 6:, :] == 7) and torch.all(x[0, :, :, 5:] == 7)
    assert torch.all(x[1] == 10)
    for ds in out['data_samples']:
        assert ds.metainfo['batch_input_shape'] == (8, 8)
    assert [ds.metainfo['attention_dropped']
            for ds in out['data_samples']] == [True, False]
    # inference: stamped, never erased
    samples = [_sample(img_shape=(8, 8), prev=torch.ones(1, 8, 8))]
    out = pre(dict(inputs=[torch.full((3, 8, 8), 10.)], data_samples=samples),
              training=False)
    assert torch.all(out['inputs'] == 10)
    assert out['data_samples'][0].metainfo['batch_input_shape'] == (8, 8)
    assert 'attention_dropped' not in out['data_samples'][0].metainfo
    np.testing.assert_equal(len(list(pre.augments)), 1)


def test_classifier_refuses_the_old_attention_drop_key():
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    with pytest.raises(ValueError, match='batch_augments'):
        MODELS.build(dict(
            type='WSClassifier',
            backbone=dict(type='ResNetV1c', depth=18, stem_channels=8,
                          base_channels=8, out_indices=(3, )),
            head=dict(type='CAMHead', in_channels=64, num_classes=2),
            attention_drop=dict(type='AttentionDrop')))
