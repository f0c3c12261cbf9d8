"""OAAHook unit tests (OAA [T] §3.2-3.3, Eqs. 2-5, 10) with a stand-in runner.

References: docs/methods/oaa.md, section 'References'.
"""
import itertools
import logging
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.runner import BaseLoop

from mmwsss.engine.hooks import OAAHook, canonical_shape
from mmwsss.engine.hooks.oaa_hook import STATE_KEY, _uniform
from mmwsss.models import AttentionDrop, WSSSDataPreProcessor
from mmwsss.models.heads import CAMHead
from mmwsss.structures import WSSSDataSample, WSTrainStep
from mmwsss.utils.cam_io import cam_path, load_cam

K = 4


class FakeModel(nn.Module):

    def __init__(self, drop=False):
        super().__init__()
        self.head = CAMHead(in_channels=1, num_classes=K)
        self.num_classes = K
        self.record_train_step = False
        self.last_train_step = None
        self.data_preprocessor = WSSSDataPreProcessor(
            mean=[0, 0, 0], std=[1, 1, 1],
            batch_augments=[AttentionDrop()] if drop else None)


class _TrainLoop(BaseLoop):
    """A built train loop (what ``runner.train()`` has before loading weights)."""

    def __init__(self):
        pass

    def run(self):
        pass


def make_runner(model=None, epoch=0, max_epochs=5, work_dir='/tmp'):
    return SimpleNamespace(
        model=model or FakeModel(), epoch=epoch, max_epochs=max_epochs,
        iter=0, max_iters=100, hooks=[], seed=0, work_dir=work_dir,
        train_loop=SimpleNamespace(), _train_loop=_TrainLoop(),
        logger=logging.getLogger('test_oaa'), _resume=True)


def sample(img_id, labels, ori=(32, 32), **meta):
    ds = WSSSDataSample(metainfo=dict(
        img_id=img_id, ori_shape=ori, img_shape=meta.pop('img_shape', ori),
        **meta))
    gt = torch.zeros(K)
    gt[list(labels)] = 1
    ds.gt_label = gt
    return ds


_STEPS = itertools.count(1)


def step(hook, runner, score_map, samples, input_shape=(32, 32)):
    """Record a training step as WSClassifier.loss does (the training-step
    protocol), then let the hook read it (twice: it must fuse it once)."""
    head = runner.model.head
    runner.model.last_train_step = WSTrainStep(
        index=next(_STEPS), class_maps=head.class_maps(score_map),
        logits=head.image_logits(score_map), data_samples=samples,
        input_shape=input_shape)
    hook.after_train_iter(runner, 0)
    n = hook.cumulative.count
    before = {k: n(*k) for k in hook.cumulative.keys()}
    hook.after_train_iter(runner, 0)  # the same step is never fused twice
    assert {k: n(*k) for k in hook.cumulative.keys()} == before


def smap(values_per_class, h=4, w=4, seed=0):
    """A (1, K, h, w) score map whose GAP per class is about values_per_class."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(1, K, h, w, generator=g) * 0.5
    m = m - m.mean((2, 3), keepdim=True)
    return m + torch.tensor(values_per_class, dtype=torch.float32)[None, :,
                                                                    None, None]


def new_hook(**kw):
    kw.setdefault('canonical_stride', 8)
    kw.setdefault('start_epoch', 0)
    kw.setdefault('export_dir', None)
    kw.setdefault('log_stats', False)
    hook = OAAHook(**kw)
    return hook


def started(hook, runner):
    hook.before_train(runner)
    assert runner.model.record_train_step
    return hook


# ------------------------------------------------------------------ gate
def test_paper_vs_topk_gate():
    a, c, n = 0, 2, 1
    labels = torch.tensor([1., 0, 1, 0])
    scores = torch.tensor([0.1, 0.9, 0.5, -1.0])  # n > c > a
    paper = new_hook(gate='paper').gate_accepts(scores, labels)
    topk = new_hook(gate='topk').gate_accepts(scores, labels)
    assert paper.tolist() == [False, False, False, False]
    assert topk[c] and not topk[a] and not topk[n]
    # |Y| = 1: both gates agree
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        s = torch.randn(K, generator=g)
        lab = torch.zeros(K)
        lab[int(torch.randint(K, (1, ), generator=g))] = 1
        assert torch.equal(
            new_hook(gate='paper').gate_accepts(s, lab),
            new_hook(gate='topk').gate_accepts(s, lab))


def test_paper_gate_ties_and_all_classes():
    hook = new_hook(gate='paper')
    # tie with the best non-target -> rejected ("not greater")
    assert not hook.gate_accepts(torch.tensor([0.5, 0.5, 0, 0]),
                                 torch.tensor([1., 0, 0, 0]))[0]
    # every class present: nothing to beat -> accepted
    assert hook.gate_accepts(torch.zeros(K), torch.ones(K)).all()
    with pytest.raises(ValueError, match='gate'):
        OAAHook(gate='top5')


# ------------------------------------------------------ accumulation rules
def test_maps_in_unit_range_with_max_one_and_absent_class_never_stored():
    hook = new_hook()
    runner = make_runner()
    started(hook, runner)
    # class 3 is absent but has by far the highest score: not stored; class 0
    # beats class 1 and 2 (non-targets) but not class 3 -> rejected by the gate
    step(hook, runner, smap([1., -2, -2, 5.]), [sample('a', [0])])
    assert len(hook.cumulative) == 0
    step(hook, runner, smap([3., -2, -2, -1]), [sample('a', [0])])
    m = hook.cumulative.get('a', 0)
    assert m.shape == canonical_shape((32, 32), None, 8) == (4, 4)
    assert m.min() >= 0 and m.max() == pytest.approx(1.0)
    assert ('a', 3) not in hook.cumulative


def test_all_nonpositive_map_gives_zeros_not_nan():
    hook = new_hook(gate='none')
    runner = make_runner()
    started(hook, runner)
    step(hook, runner, -torch.rand(1, K, 4, 4) - 0.1, [sample('a', [1])])
    m = hook.cumulative.get('a', 1)
    assert np.isfinite(m).all() and (m == 0).all()


def test_max_fusion_monotone_over_visits():
    hook = new_hook(gate='none')
    runner = make_runner()
    started(hook, runner)
    prev = None
    for t in range(5):
        runner.epoch = t
        step(hook, runner, smap([1., 0, 0, 0], seed=t), [sample('a', [0])])
        m = hook.cumulative.get('a', 0)
        if prev is not None:
            assert (m >= prev).all()
        prev = m
    assert hook.cumulative.count('a', 0) == 5


def test_nothing_before_start_epoch_and_fallback_at_last_epoch():
    hook = new_hook(gate='paper', start_epoch=2, fallback_last_epoch=True)
    runner = make_runner(max_epochs=4)
    started(hook, runner)
    good = smap([3., -2, -2, -2])
    bad = smap([-3., 2, -2, -2])  # class 0 loses to non-target 1
    for epoch in (0, 1):
        runner.epoch = epoch
        step(hook, runner, good, [sample('a', [0]), sample('b', [0])][:1])
    assert len(hook.cumulative) == 0
    runner.epoch = 2
    step(hook, runner, good, [sample('a', [0])])
    before = hook.cumulative.get('a', 0).copy()
    step(hook, runner, bad, [sample('b', [0])])
    assert ('b', 0) not in hook.cumulative
    runner.epoch = 3  # last epoch: 'b' gets its map regardless of the gate,
    step(hook, runner, bad, [sample('b', [0])])
    assert ('b', 0) in hook.cumulative
    # ... while an existing map is not overwritten by a rejected visit
    step(hook, runner, smap([-3., 2, -2, -2], seed=5), [sample('a', [0])])
    np.testing.assert_array_equal(hook.cumulative.get('a', 0), before)


def test_fallback_can_be_disabled():
    hook = new_hook(fallback_last_epoch=False)
    runner = make_runner(epoch=4, max_epochs=5)
    started(hook, runner)
    step(hook, runner, smap([-3., 2, -2, -2]), [sample('b', [0])])
    assert len(hook.cumulative) == 0


def test_visit_order_does_not_matter_under_max_fusion():
    maps = {(i, t): smap([2., 1, -3, -3], seed=10 * i + t) for i in range(3)
            for t in range(3)}
    results = []
    for order in ([0, 1, 2], [2, 0, 1]):
        hook = new_hook(gate='none')
        runner = make_runner()
        started(hook, runner)
        for t in (2, 0, 1) if order[0] else (0, 1, 2):
            for i in order:
                step(hook, runner, maps[(i, t)], [sample(f'img{i}', [0, 1])])
        results.append(hook.cumulative.state_dict())
    for key in ('ids', 'classes', 'data', 'counts'):
        np.testing.assert_array_equal(results[0][key], results[1][key])


def test_flip_is_inverted_before_fusion():
    base = smap([2., -3, -3, -3])
    flipped = base.flip(-1)
    h1, h2 = new_hook(gate='none'), new_hook(gate='none')
    r1, r2 = make_runner(), make_runner()
    started(h1, r1)
    started(h2, r2)
    step(h1, r1, base, [sample('a', [0])])
    step(h2, r2, flipped, [sample('a', [0], flip=True,
                                  flip_direction='horizontal')])
    np.testing.assert_allclose(h1.cumulative.get('a', 0),
                               h2.cumulative.get('a', 0), atol=1 / 255)


def test_crop_updates_only_the_visible_part():
    hook = new_hook(gate='none')
    runner = make_runner()
    started(hook, runner)
    # full view first (ori 64x64 -> canonical 8x8)
    full = torch.zeros(1, K, 8, 8)
    full[0, 0] = 0.5
    full[0, 0, 0, 0] = 1.0
    step(hook, runner, full, [sample('a', [0], ori=(64, 64))], (64, 64))
    m0 = hook.cumulative.get('a', 0)
    # a 32x32 crop at the bottom-right: map = 1 everywhere in it
    crop = torch.ones(1, K, 4, 4)
    s = sample('a', [0], ori=(64, 64), img_shape=(32, 32),
               crop_bbox=(32, 64, 32, 64))
    step(hook, runner, crop, [s], (32, 32))
    m1 = hook.cumulative.get('a', 0)
    np.testing.assert_array_equal(m1[:4], m0[:4])  # top half untouched
    np.testing.assert_array_equal(m1[:, :4], m0[:, :4])
    assert (m1[4:, 4:] == 1).all()


def test_padding_excluded_from_the_normalising_max():
    hook = new_hook(gate='none')
    runner = make_runner()
    started(hook, runner)
    m = torch.zeros(1, K, 8, 8)
    m[0, 0, :4, :4] = 0.25
    m[0, 0, 6:, 6:] = 10.0  # large values in the padded area only
    s = sample('a', [0], ori=(32, 32), img_shape=(32, 32))
    step(hook, runner, m, [s], (64, 64))
    np.testing.assert_allclose(hook.cumulative.get('a', 0), 1.0)


def test_training_gradients_unchanged_by_recording():
    from mmwsss.models import WSClassifier
    cfg = dict(backbone=dict(type='DeepLabVGG16', variant='oaa', width=0.0625),
               head=dict(type='CAMHead', in_channels=32, num_classes=K))
    torch.manual_seed(0)
    model = WSClassifier(**cfg)
    x = torch.randn(2, 3, 32, 32)
    samples = [sample('a', [0]), sample('b', [1, 2])]
    grads = []
    for record in (False, True):
        model.zero_grad()
        model.record_train_step = record
        loss = model.loss(x, samples)['loss_cls']
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        assert (model.last_train_step is not None) == record
    out = model.last_train_step
    assert not out.class_maps.requires_grad and not out.logits.requires_grad
    assert out.input_shape == (32, 32) and out.data_samples is samples
    f = model(x, mode='tensor')
    torch.testing.assert_close(out.class_maps, F.relu(f))
    torch.testing.assert_close(out.logits, f.mean((2, 3)))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# -------------------------------------------------------- drop layer state
def test_previous_maps_feed_the_drop_layer_in_the_current_view():
    hook = new_hook(gate='none')
    runner = make_runner(FakeModel(drop=True))
    started(hook, runner)
    assert hook.drop_enabled
    m = torch.zeros(1, K, 4, 4)
    m[0, 1, 0, 0] = 1.0  # top-left hot spot for class 1
    step(hook, runner, m, [sample('a', [1, 2])])
    runner.epoch = 1
    ds = sample('a', [1, 2], flip=True, flip_direction='horizontal')
    hook.before_train_iter(runner, 0, dict(data_samples=[ds]))
    prev = ds.prev_attention.data
    assert prev.shape == (2, 32, 32)  # classes 1 and 2 (the latter all zero)
    assert (prev[1] == 0).all()
    # flipped view: the hot spot is now top-right
    assert prev[0, 0, -1] > prev[0, 0, 0]
    assert ds.metainfo['drop_rand'] == _uniform(0, 1, 'a')
    # the previous map is the last accepted one, not the max
    m2 = torch.zeros(1, K, 4, 4)
    m2[0, 1, 3, 3] = 1.0
    step(hook, runner, m2, [sample('a', [1])])
    np.testing.assert_allclose(hook.previous.get('a', 1)[0, 0], 0)
    assert hook.cumulative.get('a', 1)[0, 0] == 1


def test_drop_rand_is_uniform_and_deterministic():
    u = np.array([_uniform(0, e, f'id{i}') for e in range(3)
                  for i in range(2000)])
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02
    assert _uniform(3, 1, 'x') == _uniform(3, 1, 'x') != _uniform(3, 2, 'x')


# ------------------------------------------------- checkpoint and export
def test_state_round_trip_through_torch_weights_only(tmp_path):
    hook = new_hook(gate='none')
    runner = make_runner(FakeModel(drop=True))
    started(hook, runner)
    step(hook, runner, smap([1., 2, 0, 0]),
         [sample('a', [0, 1], ori=(40, 24))])
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    path = str(tmp_path / 'c.pth')
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)
    other = new_hook(gate='none')
    other.after_load_checkpoint(runner, loaded)
    assert other.ori_shapes == {'a': (40, 24)}
    np.testing.assert_array_equal(other.cumulative.get('a', 1),
                                  hook.cumulative.get('a', 1))
    assert other.previous is not None and len(other.previous) == 2
    # a mismatching canonical frame is refused with the option names
    with pytest.raises(ValueError, match='canonical_short_side'):
        new_hook(canonical_short_side=224).load_state_dict(loaded[STATE_KEY])
    # load_from (no resume) does not restore the maps
    fresh = new_hook()
    runner._resume = False
    fresh.after_load_checkpoint(runner, loaded)
    assert len(fresh.cumulative) == 0


def _saved_checkpoint(runner):
    """A checkpoint dict holding the state of a hook that saw one step."""
    hook = new_hook(gate='none')
    started(hook, runner)
    step(hook, runner, smap([1., 2, 0, 0]), [sample('a', [0, 1])])
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    return ckpt


def test_test_runs_ignore_the_maps_silently(tmp_path, caplog):
    """A test / CAM-export run (``runner.test()``: no train loop is built) loads the
    checkpoint's weights only; the hook neither restores nor talks about the maps."""
    ckpt = _saved_checkpoint(make_runner())
    for resume in (False, True):
        test_runner = make_runner()
        test_runner._train_loop = dict(type='EpochBasedTrainLoop')  # not built
        test_runner._resume = resume
        fresh = new_hook(gate='none')
        with caplog.at_level(logging.INFO, logger='test_oaa'):
            fresh.after_load_checkpoint(test_runner, ckpt)
        assert len(fresh.cumulative) == 0
        assert 'OAAHook' not in caplog.text


def test_export_writes_cam_files_at_original_size(tmp_path):
    hook = new_hook(gate='none', export_dir=str(tmp_path / 'maps'))
    runner = make_runner()
    started(hook, runner)
    step(hook, runner, smap([1., 2, 0, 0]), [sample('a', [0, 1], ori=(40, 24))])
    step(hook, runner, -torch.ones(1, K, 4, 4), [sample('b', [3])])
    hook.after_train(runner)
    assert not runner.model.record_train_step
    assert runner.model.last_train_step is None
    rec = load_cam(cam_path(str(tmp_path / 'maps'), 'a'))
    assert rec.cams.shape == (2, 40, 24) and rec.labels.tolist() == [0, 1]
    assert rec.num_classes == K
    for c in rec.cams:  # min-max normalised
        assert c.min() == 0 and c.max() == pytest.approx(1, abs=1e-3)
    zero = load_cam(cam_path(str(tmp_path / 'maps'), 'b'))
    assert zero.labels.tolist() == [3] and (zero.cams == 0).all()


def test_image_without_class_is_exported_without_maps(tmp_path):
    """An image with an empty label set used to be skipped silently (no CAM file:
    the pseudo-label job then blamed the export); it gets a CAM file with K = 0."""
    hook = new_hook(gate='none', export_dir=str(tmp_path / 'maps'))
    runner = make_runner()
    started(hook, runner)
    step(hook, runner, smap([1., 2, 0, 0]), [sample('a', [0], ori=(40, 24))])
    step(hook, runner, smap([1., 2, 0, 0]), [sample('none', [], ori=(30, 20))])
    hook.after_train(runner)
    rec = load_cam(cam_path(str(tmp_path / 'maps'), 'none'))
    assert rec.cams.shape == (0, 30, 20) and rec.labels.size == 0
    assert (rec.seed(0.1) == 0).all()


def test_export_tool_matches_hook_export(tmp_path, python_exe):
    import subprocess

    from tests.conftest import REPO, run_env
    hook = new_hook(gate='none')
    runner = make_runner()
    started(hook, runner)
    step(hook, runner, smap([1., 2, 0, 0]), [sample('a', [0, 1], ori=(40, 24))])
    ckpt = dict(meta={})
    hook.before_save_checkpoint(runner, ckpt)
    torch.save(ckpt, str(tmp_path / 'c.pth'))
    hook.export(str(tmp_path / 'hook'))
    p = subprocess.run(
        [python_exe, osp.join(REPO, 'tools', 'export_oaa_maps.py'),
         str(tmp_path / 'c.pth'), '--out', str(tmp_path / 'tool'),
         '--no-progress'],
        env=run_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    a = load_cam(cam_path(str(tmp_path / 'hook'), 'a'))
    b = load_cam(cam_path(str(tmp_path / 'tool'), 'a'))
    np.testing.assert_array_equal(a.cams, b.cams)
    # a checkpoint without OAA state: a clear error
    torch.save(dict(meta={}), str(tmp_path / 'plain.pth'))
    p = subprocess.run(
        [python_exe, osp.join(REPO, 'tools', 'export_oaa_maps.py'),
         str(tmp_path / 'plain.pth'), '--out', str(tmp_path / 'x')],
        env=run_env(), capture_output=True, text=True)
    assert p.returncode != 0 and 'OAAHook' in p.stderr


def test_rejects_iteration_based_loop_and_foreign_models():
    from mmengine.runner import IterBasedTrainLoop
    hook = new_hook()
    runner = make_runner()
    runner.train_loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    with pytest.raises(ValueError, match='EpochBasedTrainLoop'):
        hook.before_train(runner)
    runner = make_runner(model=nn.Linear(2, 2))
    with pytest.raises(TypeError, match='WSClassifier'):
        hook.before_train(runner)


def test_state_of_a_newer_version_is_refused_on_resume():
    runner = make_runner()
    ckpt = _saved_checkpoint(runner)
    assert ckpt[STATE_KEY]['version'] == OAAHook.state_version
    ckpt[STATE_KEY]['version'] = OAAHook.state_version + 1
    with pytest.raises(ValueError, match='newer'):
        new_hook(gate='none').after_load_checkpoint(runner, ckpt)

