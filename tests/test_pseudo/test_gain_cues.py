"""GAINCues: GAIN's localization cues (Li et al., CVPR 2018, §4; docs/pseudo_labels.md,
section 'Rules'): a pixel is a foreground cue of class c iff A^c > 0.2 max A^c, only
the listed (GT) classes give cues, overlaps are ignored or resolved by the argmax of
the normalised attention, background comes from saliency, the rest is 255."""
import numpy as np
import pytest

from mmwsss.pseudo import GAINCues, build_pseudo_label_rule
from mmwsss.utils.cam_io import CamRecord

K = 20


def _record(cams, labels):
    return CamRecord(np.asarray(cams, np.float32), np.asarray(labels, np.int64), K)


def _random_record(seed=0, labels=(2, 7, 11), h=30, w=40):
    rng = np.random.default_rng(seed)
    cams = rng.random((len(labels), h, w)).astype(np.float32) ** 3
    # not max-normalised: the rule uses each map's own maximum
    cams *= np.array([0.37, 1.0, 0.05], np.float32)[:len(labels), None, None]
    return _record(cams, labels)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_foreground_cue_iff_above_a_fifth_of_the_maximum(seed):
    rec = _random_record(seed)
    sal = np.random.default_rng(seed + 10).integers(0, 256, rec.shape,
                                                    dtype=np.uint8)
    out = GAINCues()(rec, saliency=sal)
    assert out.dtype == np.uint8 and out.shape == rec.shape
    cue = rec.cams > 0.2 * rec.cams.max(axis=(1, 2), keepdims=True)
    n = cue.sum(0)
    for i, c in enumerate(rec.labels):
        np.testing.assert_array_equal(out == c + 1, cue[i] & (n == 1))
    np.testing.assert_array_equal(out == 0, (n == 0) & (sal < 32))
    np.testing.assert_array_equal(out == 255, (n > 1) | ((n == 0) & (sal >= 32)))
    assert set(np.unique(out)) <= {0, 255} | {int(c) + 1 for c in rec.labels}


def test_threshold_is_strict_and_relative():
    cams = np.zeros((1, 1, 5), np.float32)
    cams[0, 0] = [0.0, 0.1, 0.2, 0.21, 1.0]
    sal = np.zeros((1, 5), np.uint8)
    out = GAINCues()(_record(cams, [4]), saliency=sal)
    assert out[0].tolist() == [0, 0, 0, 5, 5]  # 0.2 * max is not a cue
    # the same map scaled: the same cues
    out2 = GAINCues()(_record(cams * 0.25, [4]), saliency=sal)
    assert out2.tolist() == out.tolist()
    out3 = GAINCues(fg_ratio=0.05)(_record(cams, [4]), saliency=sal)
    assert out3[0].tolist() == [0, 5, 5, 5, 5]


def test_only_listed_classes_and_zero_maps():
    cams = np.zeros((2, 4, 4), np.float32)
    cams[0, :2] = 1.0  # class 3, rows 0-1; class 9's map is all zero
    out = GAINCues()(_record(cams, [3, 9]), saliency=np.zeros((4, 4)))
    assert out[:2].tolist() == [[4] * 4] * 2
    assert (out[2:] == 0).all()  # not salient, no cue: background
    # no listed class: the image label says all background
    empty = CamRecord(np.zeros((0, 4, 4), np.float32), np.zeros(0, np.int64), K)
    assert (GAINCues()(empty, saliency=np.full((4, 4), 255, np.uint8)) == 0).all()


def test_overlap_rules():
    a = np.array([[1.0, 0.5, 0.95, 0.0]], np.float32)
    b = np.array([[0.0, 0.2, 0.18, 0.05]], np.float32)  # max 0.2
    rec = _record(np.stack([a, b]), [0, 5])
    sal = np.full((1, 4), 255, np.uint8)  # everything salient: no background
    # cues: a at pixels 0-2, b at 1-3; normalised b = [0, 1, .9, .25]
    ignore = GAINCues()(rec, saliency=sal)
    assert ignore[0].tolist() == [1, 255, 255, 6]
    argmax = GAINCues(overlap='argmax')(rec, saliency=sal)
    # pixel 1: the raw attention favours a (0.5 > 0.2), the normalised one b
    # (1 > .5); pixel 2: normalised a .95 > b .9
    assert argmax[0].tolist() == [1, 6, 1, 6]
    # ties of the normalised attention go to the lower class
    tie = _record(np.ones((2, 1, 2), np.float32), [1, 4])
    assert GAINCues(overlap='argmax')(tie, saliency=sal[:, :2])[0].tolist() == \
        [2, 2]


def test_foreground_cues_are_never_background():
    cams = np.zeros((1, 3, 3), np.float32)
    cams[0, 1, 1] = 1.0
    out = GAINCues()(_record(cams, [0]), saliency=np.zeros((3, 3), np.uint8))
    assert out[1, 1] == 1 and (out[[0, 2]] == 0).all()
    # an overlap pixel stays ignored even where the saliency says background
    two = _record(np.ones((2, 3, 3), np.float32), [0, 1])
    assert (GAINCues()(two, saliency=np.zeros((3, 3), np.uint8)) == 255).all()


def test_background_sources():
    cams = np.zeros((1, 2, 5), np.float32)
    cams[0, 0] = [1.0, 0.15, 0.1, 0.04, 0.0]
    rec = _record(cams, [2])
    sal = np.array([[200, 100, 50, 10, 0], [0, 31, 32, 90, 255]], np.uint8)
    out = GAINCues(bg_saliency=40)(rec, saliency=sal)
    assert out.tolist() == [[3, 255, 255, 0, 0], [0, 0, 0, 255, 255]]
    # float saliency in [0, 1] is read as S / 255
    np.testing.assert_array_equal(
        GAINCues(bg_saliency=40)(rec, saliency=sal / 255.), out)
    # the least salient 30 % (lower percentile: a value of the image, 10)
    pct = GAINCues(bg_percentile=30)(rec, saliency=sal)
    assert np.percentile(sal, 30, method='lower') == 10
    assert pct.tolist() == [[3, 255, 255, 0, 0], [0, 255, 255, 255, 255]]
    # no saliency: background where every normalised attention is below 0.05
    att = GAINCues(background='attention')
    assert not att.requires_saliency and GAINCues().requires_saliency
    assert att(rec).tolist() == [[3, 255, 255, 0, 0], [0, 0, 0, 0, 0]]
    assert GAINCues(background='attention', bg_attention=0.12)(rec).tolist() == \
        [[3, 255, 0, 0, 0], [0, 0, 0, 0, 0]]


def test_registry_validation_and_missing_saliency():
    rule = build_pseudo_label_rule(dict(type='GAINCues', overlap='argmax',
                                        bg_percentile=10))
    assert isinstance(rule, GAINCues) and rule.overlap == 'argmax'
    assert 'GAINCues(fg_ratio=0.2' in repr(rule)
    for bad in (dict(fg_ratio=1.0), dict(overlap='max'), dict(background='crf'),
                dict(bg_saliency=300), dict(bg_percentile=0),
                dict(bg_attention=2), dict(background='attention',
                                           bg_percentile=10)):
        with pytest.raises(ValueError, match='GAINCues'):
            GAINCues(**bad)
    with pytest.raises(ValueError, match='unknown_arg'):
        build_pseudo_label_rule(dict(type='GAINCues', unknown_arg=1))
    with pytest.raises(ValueError, match='saliency map is missing'):
        GAINCues()(_random_record())


def test_in_a_pipeline_on_toy_data(toy_root, tmp_path):
    """CAMToPseudoLabel with GAINCues on the toy files: CAM files from the GT masks
    (each class's map is its mask), the toy saliency maps; the cues are the classes
    where the GT says so (one object per class), and 255 on nothing else than the
    salient non-object pixels."""
    from mmwsss.registry import DATASETS
    from mmwsss.utils import register_all_modules
    from mmwsss.utils.cam_io import cam_path, save_cam
    from mmwsss.utils.io import read_label_png
    register_all_modules(init_default_scope=True)
    cams = tmp_path / 'cams'
    ids = [f'toy_train_{i:05d}' for i in range(16)]
    for i in ids:
        gt = read_label_png(f'{toy_root}/SegmentationClass/{i}.png')
        labels = sorted(int(c) - 1 for c in np.unique(gt) if 0 < c < 255)
        save_cam(cam_path(str(cams), i),
                 np.stack([(gt == c + 1) * 0.8 for c in labels]), labels, 8)
    ds = DATASETS.build(dict(
        type='ToyWSSSDataset', data_root=toy_root,
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(img_path='JPEGImages', saliency_path='SaliencyMaps',
                         cam_path=str(cams)),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadCAMFromFile'),
                  dict(type='LoadSaliencyMap'),
                  dict(type='CAMToPseudoLabel',
                       rule=dict(type='GAINCues', bg_saliency=40)),
                  dict(type='PackWSSSInputs')]))
    for idx in range(4):
        sample = ds[idx]['data_samples']
        label = sample.gt_sem_seg.data[0].numpy()
        gt = read_label_png(f'{toy_root}/SegmentationClass/{ids[idx]}.png')
        sal = sample.gt_saliency.data[0].numpy() * 255
        np.testing.assert_array_equal(label[gt > 0], gt[gt > 0])
        bg = gt == 0
        np.testing.assert_array_equal(label[bg] == 0, np.round(sal[bg]) < 40)
        assert set(np.unique(label[bg])) <= {0, 255}
