"""ClassGroupSampler (EDAM's groups of images sharing a class): every group shares a
class with its anchor (similar mode), every image is an anchor once per pass,
groups never cross batches or ranks, W processes with batch b see the groups of one
process with batch W*b, deterministic per seed / epoch (resumable), and it works
with MMEngine's Runner-built data loader."""
import logging

import numpy as np
import pytest
import torch

import mmwsss.datasets.samplers.class_group_sampler as cgs
from mmwsss.datasets.samplers import ClassGroupSampler


class LabelDataset:
    """Just what the sampler reads: the length and the items' image labels."""

    def __init__(self, labels, num_classes=None, with_labels=True):
        self.labels = [tuple(c) for c in labels]
        self.num_classes = num_classes or 1 + max(
            (max(c) for c in self.labels if c), default=0)
        self.with_labels = with_labels

    def __len__(self):
        return len(self.labels)

    def get_data_info(self, i):
        if not self.with_labels:
            return dict(img_id=str(i))
        vec = np.zeros(self.num_classes, np.float32)
        vec[list(self.labels[i])] = 1
        return dict(img_id=str(i), gt_label=vec)


def random_labels(n, num_classes=5, seed=0, empty=()):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i in empty:
            out.append(())
            continue
        k = rng.integers(1, 3)
        out.append(tuple(sorted(rng.choice(num_classes, k, replace=False))))
    return out


def _sampler(ds, rank=0, world_size=1, monkeypatch=None, **kw):
    if monkeypatch is not None:
        monkeypatch.setattr(cgs, 'get_dist_info', lambda: (rank, world_size))
    kw.setdefault('seed', 0)
    return ClassGroupSampler(ds, **kw)


def _batches(sampler):
    idx = list(sampler)
    b = sampler.batch_size
    assert len(idx) == len(sampler) and len(idx) % b == 0
    return [idx[i:i + b] for i in range(0, len(idx), b)]


def _groups(batch, k):
    assert len(batch) % k == 0
    return [batch[i:i + k] for i in range(0, len(batch), k)]


@pytest.mark.parametrize('group_size', [1, 2, 3, 4])
@pytest.mark.parametrize('epoch_repeats', [1, 3])
def test_similar_groups_share_a_class_and_every_image_anchors_once(
        group_size, epoch_repeats):
    labels = random_labels(41)
    ds = LabelDataset(labels)
    s = _sampler(ds, batch_size=2 * group_size, group_size=group_size,
                 epoch_repeats=epoch_repeats)
    seq = s.epoch_groups()
    assert seq.shape == (41 * epoch_repeats, group_size)
    for p in range(epoch_repeats):  # each pass: every image anchors once
        assert sorted(seq[p * 41:(p + 1) * 41, 0].tolist()) == list(range(41))
    groups = [g for b in _batches(s) for g in _groups(b, group_size)]
    for g in groups:
        anchor, partners = g[0], g[1:]
        assert anchor not in partners
        shared = set(labels[anchor]).intersection(*(labels[p] for p in partners))
        assert shared, (g, [labels[i] for i in g])
        assert len(set(g)) == group_size  # every class here has >= 4 holders
    # the stream is the padded global sequence (1 process)
    assert [g[0] for g in groups][:len(seq)] == seq[:, 0].tolist()
    assert len(groups) == len(s) // group_size >= len(seq)
    assert len(groups) - len(seq) < 2  # padding below one batch of 2 groups


def test_class_drawn_uniformly_among_the_anchor_labels():
    # image 0 holds classes 0 and 1; class 0: ten other images, class 1: one
    labels = [(0, 1)] + [(0, )] * 10 + [(1, )]
    s = _sampler(LabelDataset(labels), batch_size=2, epoch_repeats=400)
    seq = s.epoch_groups()
    partners = seq[seq[:, 0] == 0, 1]
    assert len(partners) == 400
    # via class 1 (p = 1/2) the partner is image 11, via class 0 never
    assert 150 < int((partners == 11).sum()) < 250
    # the partners of anchor 11 (class 1 only) are always image 0
    assert set(seq[seq[:, 0] == 11, 1].tolist()) == {0}
    # partners are uniform among the holders of class 0
    counts = np.bincount(partners[partners != 11], minlength=11)[1:]
    assert counts.min() > 0


@pytest.mark.parametrize('world_size', [2, 3])
@pytest.mark.parametrize('group_size,batch_size', [(2, 4), (3, 3), (1, 2)])
def test_ranks_together_equal_one_process_with_the_global_batch(
        monkeypatch, world_size, group_size, batch_size):
    labels = random_labels(53, seed=1)
    ds = LabelDataset(labels)
    kw = dict(group_size=group_size, seed=5, epoch_repeats=2)
    per_rank = [
        _batches(_sampler(ds, r, world_size, monkeypatch, batch_size=batch_size,
                          **kw)) for r in range(world_size)
    ]
    assert len({len(b) for b in per_rank}) == 1  # ranks step together
    single = _batches(_sampler(ds, 0, 1, monkeypatch,
                               batch_size=world_size * batch_size, **kw))
    assert len(single) == len(per_rank[0])
    for t, batch in enumerate(single):
        assert batch == [i for r in range(world_size) for i in per_rank[r][t]]
    # disjoint apart from the padding: every (pass, anchor) once, padding repeats
    # the start of the global sequence
    num_groups = 2 * 53
    anchors = [g[0] for b in single for g in _groups(b, group_size)]
    pad = len(anchors) - num_groups
    assert 0 <= pad < world_size * (batch_size // group_size)
    assert (np.bincount(anchors, minlength=53) ==
            2 + np.bincount(anchors[:pad], minlength=53)).all()
    assert anchors[num_groups:] == anchors[:pad]
    assert sorted(anchors[:53]) == sorted(anchors[53:106]) == list(range(53))


def test_deterministic_set_epoch_and_resume():
    ds = LabelDataset(random_labels(30, seed=2))
    a = _sampler(ds, batch_size=4, seed=7)
    b = _sampler(ds, batch_size=4, seed=7)
    first = list(a)
    assert first == list(b) == list(a)  # the same (seed, epoch) repeats
    a.set_epoch(1)
    second = list(a)
    assert second != first and a.epoch == 1
    assert sorted(second[::2]) == sorted(first[::2]) == list(range(30))
    # a resumed run: a new sampler, set to epoch 1, continues the same stream
    resumed = _sampler(ds, batch_size=4, seed=7)
    resumed.set_epoch(1)
    assert first + second == list(b) + list(resumed)
    assert list(_sampler(ds, batch_size=4, seed=8)) != first


def test_no_shuffle_keeps_the_anchor_order():
    ds = LabelDataset(random_labels(12, seed=3))
    s = _sampler(ds, batch_size=4, shuffle=False)
    assert list(s)[::2] == list(range(12))
    s.set_epoch(1)
    assert list(s)[::2] == list(range(12))


def test_random_mode_reads_no_labels_and_mixes_classes():
    # two disjoint halves: similar groups never mix them, random ones often do
    labels = [(0, )] * 20 + [(1, )] * 20
    unlabelled = LabelDataset(labels, with_labels=False)
    s = _sampler(unlabelled, batch_size=4, mode='random', epoch_repeats=5)
    assert s.image_classes is None
    seq = s.epoch_groups()
    assert (seq[:, 0] != seq[:, 1]).all()
    for p in range(5):
        assert sorted(seq[p * 40:(p + 1) * 40, 0].tolist()) == list(range(40))
    mixed = ((seq[:, 0] < 20) != (seq[:, 1] < 20)).mean()
    assert 0.35 < mixed < 0.65  # about 20/39
    fours = _sampler(unlabelled, batch_size=4, group_size=4, mode='random')
    assert all(len(set(g)) == 4 for g in fours.epoch_groups().tolist())
    similar = _sampler(LabelDataset(labels), batch_size=4,
                       epoch_repeats=5).epoch_groups()
    assert ((similar[:, 0] < 20) == (similar[:, 1] < 20)).all()


def test_few_holders_repeat_partners_never_the_anchor():
    # class 2 has two holders (0, 1), class 3 has three (2, 3, 4)
    labels = [(2, ), (2, ), (3, ), (3, ), (3, ), (0, ), (0, ), (0, ), (0, ), (0, )]
    s = _sampler(LabelDataset(labels), batch_size=4, group_size=4,
                 epoch_repeats=3)
    for g in s.epoch_groups().tolist():
        a, partners = g[0], g[1:]
        assert a not in partners
        if a in (0, 1):
            assert partners == [1 - a] * 3
        elif a in (2, 3, 4):
            assert set(partners) == {2, 3, 4} - {a} and len(partners) == 3
        else:
            assert len(set(g)) == 4 and set(g) <= {5, 6, 7, 8, 9}
    # random mode with fewer images than a group: repeats, never the anchor
    r = _sampler(LabelDataset([(0, ), (0, )], with_labels=False), batch_size=3,
                 group_size=3, mode='random')
    assert sorted(r.epoch_groups().tolist()) == [[0, 1, 1], [1, 0, 0]]


def test_label_less_images_are_left_out_and_unique_classes_fall_back(
        monkeypatch):
    logged = []
    monkeypatch.setattr(cgs, 'print_log',
                        lambda msg, logger=None, level=None: logged.append(
                            (msg, level)))
    # 3 and 7: no class; 9: class 4 held by no other image
    labels = random_labels(12, num_classes=3, empty=(3, 7))
    labels[9] = (4, )
    s = _sampler(LabelDataset(labels), batch_size=2, epoch_repeats=4)
    assert [lv for _, lv in logged] == [logging.WARNING] * 2
    assert '2 image(s) of 12 have no foreground class' in logged[0][0]
    assert '1 image(s) share no class' in logged[1][0]
    assert s.isolated == [9]
    seq = s.epoch_groups()
    assert not ({3, 7} & set(seq.reshape(-1).tolist()))
    assert sorted(seq[:10, 0].tolist()) == [0, 1, 2, 4, 5, 6, 8, 9, 10, 11]
    assert len(s) == 4 * 10 * 2
    fallback = seq[seq[:, 0] == 9, 1]
    assert len(fallback) == 4 and not ({3, 7, 9} & set(fallback.tolist()))
    for a, p in seq[seq[:, 0] != 9].tolist():
        assert set(labels[a]) & set(labels[p])


def test_round_up_false_drops_the_last_round(monkeypatch):
    ds = LabelDataset(random_labels(23, seed=4))
    per_rank = [
        _batches(_sampler(ds, r, 2, monkeypatch, batch_size=4, round_up=False))
        for r in range(2)
    ]
    assert [len(b) for b in per_rank] == [5, 5]  # 23 groups -> 5 rounds of 2x2
    anchors = [i for b in per_rank for batch in b for i in batch[::2]]
    assert len(anchors) == len(set(anchors)) == 20
    with pytest.raises(ValueError, match='round_up'):
        _sampler(ds, 0, 2, monkeypatch, batch_size=48, round_up=False)


def test_seed_none_is_drawn():
    s = ClassGroupSampler(LabelDataset([(0, ), (0, )]), batch_size=2)
    assert isinstance(s.seed, int)


def test_errors_name_the_config_keys():
    ds = LabelDataset(random_labels(10))
    with pytest.raises(ValueError, match=r'batch_size.*train_dataloader.'
                       r'batch_size.*group_size'):
        ClassGroupSampler(ds, batch_size=5, group_size=2, seed=0)
    with pytest.raises(ValueError, match='sampler.group_size'):
        ClassGroupSampler(ds, batch_size=5, group_size=5, seed=0)
    with pytest.raises(ValueError, match='sampler.group_size'):
        ClassGroupSampler(ds, batch_size=4, group_size=0, seed=0)
    with pytest.raises(ValueError, match='sampler.mode'):
        ClassGroupSampler(ds, batch_size=4, mode='pairs', seed=0)
    with pytest.raises(ValueError, match='epoch_repeats'):
        ClassGroupSampler(ds, batch_size=4, epoch_repeats=0, seed=0)
    no_labels = LabelDataset(random_labels(10), with_labels=False)
    with pytest.raises(ValueError, match=r"no 'gt_label'.*mode='random'"):
        ClassGroupSampler(no_labels, batch_size=4, seed=0)

    class Ragged(LabelDataset):

        def get_data_info(self, i):
            info = super().get_data_info(i)
            info['gt_label'] = info['gt_label'][:4 if i else 5]
            return info

    with pytest.raises(ValueError, match='index 1 .*4 entries'):
        ClassGroupSampler(Ragged(random_labels(5, num_classes=4), 5),
                          batch_size=2, seed=0)
    with pytest.raises(ValueError, match='no image .* has a foreground class'):
        ClassGroupSampler(LabelDataset([(), ()], num_classes=3), batch_size=2,
                          seed=0)
    with pytest.raises(ValueError, match='at least 2 labelled images'):
        ClassGroupSampler(LabelDataset([(0, ), ()]), batch_size=2, seed=0)
    assert len(ClassGroupSampler(LabelDataset([(0, ), ()]), batch_size=2,
                                 group_size=1, seed=0)) == 2


def test_with_the_runner_data_loader(toy_root):
    """Built by MMEngine's Runner from a config dict (dataset and seed injected),
    batched by the default DataLoader: consecutive pairs share a class."""
    from mmengine.runner import Runner

    from mmwsss.engine.runner.wsss_runner import check_sampler_batch_size
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    loader = Runner.build_dataloader(
        dict(batch_size=4, num_workers=0,
             sampler=dict(type='ClassGroupSampler', batch_size=4, group_size=2),
             dataset=dict(
                 type='ToyWSSSDataset', data_root=toy_root,
                 ann_file='ImageSets/Segmentation/train.txt',
                 data_prefix=dict(img_path='JPEGImages',
                                  seg_map_path='SegmentationClass'),
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackWSSSInputs')])),
        seed=3)
    assert isinstance(loader.sampler, ClassGroupSampler) and loader.sampler.seed == 3
    check_sampler_batch_size(loader)
    n = len(loader.dataset)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-n // 2)  # n pairs, 2 per batch
    anchors = []
    for batch in batches:
        samples = batch['data_samples']
        assert len(samples) == 4 and isinstance(batch['inputs'][0], torch.Tensor)
        for a, p in (samples[0:2], samples[2:4]):
            assert a.metainfo['img_id'] != p.metainfo['img_id']
            assert (torch.as_tensor(a.gt_label) *
                    torch.as_tensor(p.gt_label)).sum() > 0
            anchors.append(a.metainfo['img_id'])
    assert len(set(anchors)) == n
