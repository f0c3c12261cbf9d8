"""StrongMixSampler: every batch of every rank holds ``num_strong`` strong images, an
epoch covers the weak images once (ranks disjoint), deterministic per seed / epoch,
and it works with MMEngine's Runner-built data loader (docs/datasets.md, section
'Strong subsets')."""
import logging

import pytest
import torch

import mmwsss.datasets.samplers.strong_mix_sampler as sms
from mmwsss.datasets.samplers import StrongMixSampler


class FlagDataset:
    """Just what a sampler reads: the length and the items' flags."""

    def __init__(self, n, strong=(), box=(), flags=True):
        self.n, self.strong, self.box, self.flags = n, set(strong), set(box), flags

    def __len__(self):
        return self.n

    def get_data_info(self, i):
        if not self.flags:
            return dict(img_id=str(i))
        return dict(img_id=str(i), strong_pixel=i in self.strong,
                    strong_box=i in self.box)


def _sampler(ds, rank=0, world_size=1, monkeypatch=None, **kw):
    if monkeypatch is not None:
        monkeypatch.setattr(sms, 'get_dist_info', lambda: (rank, world_size))
    kw.setdefault('seed', 0)
    return StrongMixSampler(ds, **kw)


def _batches(sampler):
    idx = list(sampler)
    assert len(idx) == len(sampler) and len(idx) % sampler.batch_size == 0
    b = sampler.batch_size
    return [idx[i:i + b] for i in range(0, len(idx), b)]


@pytest.mark.parametrize('world_size', [1, 2, 3])
@pytest.mark.parametrize('num_strong', [1, 3])
def test_every_batch_mixes_and_the_epoch_covers_the_weak(monkeypatch, world_size,
                                                         num_strong):
    strong = set(range(0, 103, 10))  # 11 strong (pixel and box) of 103
    ds = FlagDataset(103, strong=list(strong)[:6], box=list(strong)[6:])
    per_rank = [
        _batches(_sampler(ds, r, world_size, monkeypatch, batch_size=5,
                          num_strong=num_strong)) for r in range(world_size)
    ]
    assert len({len(b) for b in per_rank}) == 1  # ranks step together
    weak_seen = []
    for batches in per_rank:
        for batch in batches:
            assert len(batch) == 5
            assert sum(i in strong for i in batch) == num_strong, batch
            assert all(i in strong for i in batch[:num_strong])  # first
            assert len(set(batch[:num_strong])) == num_strong  # no repeat
            weak_seen += batch[num_strong:]
    weak = set(range(103)) - strong
    assert set(weak_seen) == weak  # every weak image once per epoch ...
    n_weak_slots = len(weak_seen)
    per_batch = 5 - num_strong
    # ... plus the padding to whole batches on every rank, and no more
    assert n_weak_slots - len(weak) < per_batch * world_size
    assert len(weak_seen) - len(set(weak_seen)) == n_weak_slots - len(weak)


def test_ranks_are_disjoint_in_weak_indices(monkeypatch):
    # 4 weak per batch, 2 ranks, 80 weak images: no padding needed
    strong = list(range(80, 90))
    ds = FlagDataset(90, strong=strong)
    kw = dict(batch_size=6, num_strong=2)
    r0 = list(_sampler(ds, 0, 2, monkeypatch, **kw))
    r1 = list(_sampler(ds, 1, 2, monkeypatch, **kw))
    w0 = [i for i in r0 if i < 80]
    w1 = [i for i in r1 if i < 80]
    assert len(w0) == len(w1) == 40
    assert not set(w0) & set(w1) and set(w0) | set(w1) == set(range(80))
    assert len(r0) == len(r1) == 60


def test_strong_stream_cycles(monkeypatch):
    # 3 strong images, 2 per batch, 40 batches: each is seen ~27 times
    ds = FlagDataset(83, strong=[80, 81, 82])
    s = _sampler(ds, batch_size=4, num_strong=2)
    batches = _batches(s)
    assert len(batches) == 40
    counts = {i: sum(b[:2].count(i) for b in batches) for i in (80, 81, 82)}
    assert sum(counts.values()) == 80 and min(counts.values()) >= 26
    assert all(b[0] != b[1] for b in batches)


def test_fewer_strong_than_per_batch_repeats_with_a_warning(monkeypatch):
    logged = []
    monkeypatch.setattr(sms, 'print_log',
                        lambda msg, logger=None, level=None: logged.append(
                            (msg, level)))
    ds = FlagDataset(21, strong=[20])
    s = _sampler(ds, batch_size=4, num_strong=2)
    assert len(logged) == 1 and logged[0][1] == logging.WARNING
    assert 'only 1 strong image(s) for num_strong=2' in logged[0][0]
    batches = _batches(s)
    assert all(b[:2] == [20, 20] for b in batches)
    assert len(batches) == 10


def test_deterministic_and_set_epoch_changes_the_order():
    ds = FlagDataset(60, strong=[3, 17, 41, 55])
    a = _sampler(ds, batch_size=4, num_strong=1, seed=7)
    b = _sampler(ds, batch_size=4, num_strong=1, seed=7)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating again repeats the epoch
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and a.epoch == 1
    weak = set(range(60)) - {3, 17, 41, 55}
    assert set(a) & weak == set(first) & weak == weak  # the same weak images
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(_sampler(ds, batch_size=4, num_strong=1, seed=8)) != first
    # no shuffle: dataset order, strong cycling in order
    plain = _batches(_sampler(ds, batch_size=4, num_strong=1, shuffle=False))
    assert [b[0] for b in plain[:6]] == [3, 17, 41, 55, 3, 17]
    assert plain[0][1:] == [0, 1, 2] and plain[1][1:] == [4, 5, 6]


def test_seed_none_is_drawn():
    ds = FlagDataset(10, strong=[0])
    s = StrongMixSampler(ds, batch_size=2, num_strong=1)
    assert isinstance(s.seed, int)


def test_errors_name_the_config_keys():
    ds = FlagDataset(10, strong=[0])
    with pytest.raises(ValueError, match='train_dataloader.sampler.num_strong'):
        StrongMixSampler(ds, batch_size=4, num_strong=4, seed=0)
    with pytest.raises(ValueError, match='train_dataloader.sampler.num_strong'):
        StrongMixSampler(ds, batch_size=4, num_strong=0, seed=0)
    with pytest.raises(ValueError, match='batch_size.*train_dataloader.batch_size'):
        StrongMixSampler(ds, batch_size=1, num_strong=1, seed=0)
    with pytest.raises(ValueError, match='strong_subsets'):
        StrongMixSampler(FlagDataset(10, flags=False), batch_size=4, seed=0)
    with pytest.raises(ValueError, match='lists none of its ids'):
        StrongMixSampler(FlagDataset(10), batch_size=4, seed=0)
    with pytest.raises(ValueError, match='DefaultSampler'):
        StrongMixSampler(FlagDataset(3, strong=[0, 1, 2]), batch_size=2, seed=0)


def test_with_the_runner_data_loader(toy_root, tmp_path):
    """Built by MMEngine's Runner from a config dict (dataset and seed injected),
    batched by the default DataLoader: every batch holds one strong sample, which
    the packed metainfo flags."""
    from mmengine.runner import Runner

    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    (tmp_path / 'pixel.txt').write_text('toy_train_00003\ntoy_train_00007\n')
    (tmp_path / 'box.txt').write_text('toy_train_00011\n')
    loader = Runner.build_dataloader(
        dict(batch_size=4, num_workers=0,
             sampler=dict(type='StrongMixSampler', batch_size=4, num_strong=1),
             dataset=dict(
                 type='ToyWSSSDataset', data_root=toy_root,
                 ann_file='ImageSets/Segmentation/train.txt',
                 data_prefix=dict(img_path='JPEGImages',
                                  seg_map_path='SegmentationClass',
                                  saliency_path='SaliencyMaps'),
                 strong_subsets=dict(pixel=str(tmp_path / 'pixel.txt'),
                                     box=str(tmp_path / 'box.txt')),
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LoadExtraSupervision'),
                           dict(type='RandomFlip', prob=0.5),
                           dict(type='PackWSSSInputs')])),
        seed=3)
    assert isinstance(loader.sampler, StrongMixSampler) and loader.sampler.seed == 3
    batches = list(loader)
    assert len(batches) == len(loader) == 5  # 13 weak images, 3 per batch
    weak_ids = []
    for batch in batches:
        samples = batch['data_samples']
        assert len(samples) == 4 and isinstance(batch['inputs'][0], torch.Tensor)
        strong = [s for s in samples
                  if s.metainfo['strong_pixel'] or s.metainfo['strong_box']]
        assert len(strong) == 1 and strong[0] is samples[0]
        s = strong[0]
        assert hasattr(s, 'gt_sem_seg') == s.metainfo['strong_pixel']
        assert hasattr(s, 'gt_box_mask') == s.metainfo['strong_box']
        weak_ids += [x.metainfo['img_id'] for x in samples[1:]]
    assert len(set(weak_ids)) == 13
