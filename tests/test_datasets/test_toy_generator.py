import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmwsss.datasets import TOY_CLASSES, make_toy_dataset
from mmwsss.utils.io import load_class_labels, read_split_ids

SUBDIRS = ('JPEGImages', 'SegmentationClass', 'SaliencyMaps', 'Annotations')


def _all_files(root):
    out = []
    for dp, _, fns in os.walk(root):
        out += [osp.relpath(osp.join(dp, f), root) for f in fns]
    return sorted(out)


def test_layout(toy_root):
    for d in SUBDIRS:
        assert osp.isdir(osp.join(toy_root, d))
    train = read_split_ids(
        osp.join(toy_root, 'ImageSets/Segmentation/train.txt'))
    val = read_split_ids(osp.join(toy_root, 'ImageSets/Segmentation/val.txt'))
    assert len(train) == 16 and len(val) == 8 and not set(train) & set(val)
    labels = load_class_labels(osp.join(toy_root, 'cls_labels.npy'))
    assert labels.num_classes == len(TOY_CLASSES) - 1 == 8
    for img_id in train + val:
        img = np.array(Image.open(osp.join(toy_root, 'JPEGImages',
                                           img_id + '.jpg')))
        lab = np.array(Image.open(osp.join(toy_root, 'SegmentationClass',
                                           img_id + '.png')))
        sal = np.array(Image.open(osp.join(toy_root, 'SaliencyMaps',
                                           img_id + '.png')))
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert lab.shape == sal.shape == (128, 128)
        n = int(labels[img_id].sum())
        assert 1 <= n <= 3
        assert set(np.unique(lab)) - {0} <= set(range(1, 9))


def test_deterministic_and_seed_dependent(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    make_toy_dataset(a, seed=3, num_train=6, num_val=2)
    make_toy_dataset(b, seed=3, num_train=6, num_val=2)
    make_toy_dataset(c, seed=4, num_train=6, num_val=2)
    files = _all_files(a)
    assert files == _all_files(b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    _, mismatch_c, _ = filecmp.cmpfiles(a, c, files, shallow=False)
    assert any(f.startswith('JPEGImages') for f in mismatch_c)


def test_prefix_stable_when_adding_images(tmp_path):
    """Images are generated from per-image streams: more images never change the
    earlier ones (so a bigger demo set contains the test set)."""
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    make_toy_dataset(a, seed=0, num_train=4, num_val=2)
    make_toy_dataset(b, seed=0, num_train=6, num_val=2)
    assert filecmp.cmp(
        osp.join(a, 'JPEGImages/toy_train_00003.jpg'),
        osp.join(b, 'JPEGImages/toy_train_00003.jpg'), shallow=False)


def test_skip_and_refuse_overwrite(tmp_path):
    out = str(tmp_path / 'toy')
    make_toy_dataset(out, seed=0, num_train=2, num_val=1)
    mtime = os.path.getmtime(osp.join(out, 'toy_meta.json'))
    make_toy_dataset(out, seed=0, num_train=2, num_val=1)  # same params: no-op
    assert os.path.getmtime(osp.join(out, 'toy_meta.json')) == mtime
    with pytest.raises(FileExistsError, match='--overwrite'):
        make_toy_dataset(out, seed=1, num_train=2, num_val=1)
    make_toy_dataset(out, seed=1, num_train=2, num_val=1, overwrite=True)
    with open(osp.join(out, 'toy_meta.json')) as f:
        assert json.load(f)['seed'] == 1
    # nothing temporary is left next to the output
    assert os.listdir(tmp_path) == ['toy']


@pytest.fixture(scope='module')
def toy_v1_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy_v1') / 'toy')
    make_toy_dataset(root, seed=0, num_train=16, num_val=8, version=1)
    return root


def test_marker_is_small_and_class_specific_v1(toy_v1_root):
    """Version 1: the class evidence that is *unique* to a class (its marker colour)
    covers a small part of the object, while the body texture is shared by all
    classes."""
    from mmwsss.datasets.toy_generator import _MARKER_COLORS
    toy_root = toy_v1_root
    ids = read_split_ids(osp.join(toy_root, 'ImageSets/Segmentation/train.txt'))
    fractions = []
    body_means = []
    for img_id in ids:
        img = np.array(Image.open(osp.join(toy_root, 'JPEGImages',
                                           img_id + '.jpg'))).astype(float)
        lab = np.array(Image.open(osp.join(toy_root, 'SegmentationClass',
                                           img_id + '.png')))
        for c in np.unique(lab):
            if c == 0:
                continue
            m = lab == c
            d = np.abs(img - _MARKER_COLORS[c - 1]).sum(-1)
            marker = (d < 90) & m
            fractions.append(marker.sum() / m.sum())
            body_means.append(img[m & ~marker].mean(0))
    fractions = np.array(fractions)
    assert (fractions > 0).mean() > 0.9      # the marker is visible
    assert np.median(fractions) < 0.15       # ... and small
    spread = np.std(np.array(body_means), axis=0).max()
    assert spread < 25                       # body colour shared by classes


# (seed, image index) pairs whose first marker draw fell (partly) outside the image:
# generation crashed there ("could not broadcast input array from shape (8,8,3) into
# shape (0,8,3)", e.g. make_toy_dataset.py --seed 3)
MARKER_AT_BORDER = [(1, 401), (2, 106), (3, 81), (4, 70), (8, 51)]


@pytest.mark.parametrize('seed,index', MARKER_AT_BORDER)
def test_marker_redrawn_inside_the_image(seed, index):
    from mmwsss.datasets.toy_generator import _generate_one, _marker_fits
    stream = np.random.SeedSequence(seed).spawn(index + 1)[index]
    img, label, _, objects = _generate_one(np.random.default_rng(stream), 128, 8, 3)
    assert img.shape == (128, 128, 3) and label.shape == (128, 128)
    assert sorted(np.unique(label[label > 0]) - 1) == sorted(
        o['cls'] for o in objects)
    # the positions a redraw chooses from keep the whole marker in the image
    fits = _marker_fits(np.ones((128, 128), bool), 8)
    ys, xs = np.nonzero(fits)
    assert ys.min() - 4 >= 0 and ys.max() - 4 + 8 <= 128
    assert xs.min() - 4 >= 0 and xs.max() - 4 + 8 <= 128


def test_seed_3_generates(tmp_path):
    meta = make_toy_dataset(str(tmp_path / 'toy'), seed=3, num_train=82, num_val=1)
    assert meta['seed'] == 3
    ids = read_split_ids(str(tmp_path / 'toy' / 'ImageSets' / 'Segmentation' /
                             'train.txt'))
    assert len(ids) == 82


def test_version_1_unchanged(toy_v1_root):
    """``version=1`` still writes the earlier data: the decoded label and saliency
    maps of the first train images of seed 0 hash as the version-1 generator's
    (commit 38e0f57) did; the saliency maps are drawn last, so they change if any
    random draw before them does."""
    import hashlib
    with open(osp.join(toy_v1_root, 'toy_meta.json')) as f:
        meta = json.load(f)
    assert meta['generator_version'] == 1 and 'markers' not in meta
    h = hashlib.md5()
    for i in range(4):
        for d in ('SegmentationClass', 'SaliencyMaps'):
            arr = np.array(Image.open(osp.join(toy_v1_root, d,
                                               f'toy_train_{i:05d}.png')))
            h.update(np.ascontiguousarray(arr).tobytes())
    assert h.hexdigest() == '4f8d03bfef065eccf159dd1b9ab65113'


def test_meta_records_version_and_markers(tmp_path):
    from mmwsss.datasets.toy_generator import GENERATOR_VERSION
    meta = make_toy_dataset(str(tmp_path / 'a'), seed=0, num_train=2, num_val=1)
    assert GENERATOR_VERSION == 2
    assert meta['generator_version'] == 2 and meta['markers'] is True
    with open(tmp_path / 'a' / 'toy_meta.json') as f:
        assert json.load(f) == meta
    meta = make_toy_dataset(str(tmp_path / 'b'), seed=0, num_train=2, num_val=1,
                            markers=False)
    assert meta['markers'] is False
    with pytest.raises(ValueError, match='version'):
        make_toy_dataset(str(tmp_path / 'c'), version=3)
    with pytest.raises(ValueError, match='version 2'):
        make_toy_dataset(str(tmp_path / 'c'), version=1, markers=False)


def _v2(seed, index, markers=True):
    from mmwsss.datasets.toy_generator import _generate_one_v2
    stream = np.random.SeedSequence(seed).spawn(index + 1)[index]
    return _generate_one_v2(np.random.default_rng(stream), 128, 8, 3, markers)


@pytest.mark.parametrize('seed', range(20))
def test_v2_every_seed_generates(seed):
    """20 seeds x 8 images (in place of whole datasets): every image is valid, every
    object is visible with its marker inside the image and inside the object."""
    for index in range(8):
        img, label, sal, objects = _v2(seed, index)
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert label.shape == sal.shape == (128, 128)
        assert sorted(set(np.unique(label)) - {0}) == sorted(
            o['cls'] + 1 for o in objects)
        for o in objects:
            x0, y0, x1, y1 = o['marker']
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
            assert (label[y0:y1, x0:x1] == o['cls'] + 1).all()


def test_v2_objects_large_and_marker_small(toy_root):
    """Version 2 (the default, ``toy_root``): objects cover many CAM cells (stride 8)
    and the marker (the only part unique to a class) is a few % of the object."""
    ids = read_split_ids(osp.join(toy_root, 'ImageSets/Segmentation/train.txt'))
    areas = []
    for img_id in ids:
        lab = np.array(Image.open(osp.join(toy_root, 'SegmentationClass',
                                           img_id + '.png')))
        areas += [(lab == c).sum() for c in np.unique(lab) if c]
    areas = np.array(areas)
    assert np.median(areas) > 2000          # > 30 CAM cells of 8 x 8 px
    assert (100 / areas).max() < 0.25       # the 10 x 10 marker
    assert np.median(100 / areas) < 0.05


def test_v2_markers_false_changes_only_the_markers():
    """The body-only control set: every pixel outside the marker squares is the same
    as with markers; inside, the marker colour is gone."""
    from mmwsss.datasets.toy_generator import _MARKER_COLORS
    for index in range(6):
        a, la, sa, objs = _v2(5, index, markers=True)
        b, lb, sb, _ = _v2(5, index, markers=False)
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(sa, sb)
        in_marker = np.zeros((128, 128), bool)
        for o in objs:
            x0, y0, x1, y1 = o['marker']
            in_marker[y0:y1, x0:x1] = True
            colour = _MARKER_COLORS[o['cls']].astype(float)
            dist_a = np.abs(a[y0:y1, x0:x1].astype(float) - colour).sum(-1)
            dist_b = np.abs(b[y0:y1, x0:x1].astype(float) - colour).sum(-1)
            assert dist_a.min() < 60 and np.median(dist_b) > np.median(dist_a)
        np.testing.assert_array_equal(a[~in_marker], b[~in_marker])


def test_v2_body_evidence_partly_shared():
    """Body colour is shared by class pairs, the stripe period by half the classes,
    and each is that of another class with probability V2_ATTRIBUTE_SWAP: the body
    is evidence for its class, not proof."""
    from mmwsss.datasets.toy_generator import (V2_ATTRIBUTE_SWAP,
                                               _v2_body_attributes)
    rng = np.random.default_rng(0)
    n = 4000
    for c in (0, 5):
        draws = np.array([_v2_body_attributes(rng, c, 8) for _ in range(n)])
        own_colour = (draws[:, 0] == c // 2).mean()
        own_period = (draws[:, 1] == c % 2).mean()
        # kept with 1 - p, plus a random class that happens to share it
        assert own_colour == pytest.approx(
            1 - V2_ATTRIBUTE_SWAP + V2_ATTRIBUTE_SWAP * 2 / 8, abs=0.03)
        assert own_period == pytest.approx(
            1 - V2_ATTRIBUTE_SWAP + V2_ATTRIBUTE_SWAP / 2, abs=0.03)
    # the partner class (2k, 2k+1) has the same colour and the other period
    assert _v2_body_attributes(np.random.default_rng(1), 2, 8)[0] == 1


# ------------------------------------------------------- GAIN_ext strong subsets
def test_strong_subsets_written_and_recorded(toy_root):
    """Every toy dataset holds the GAIN_ext lists of 10 % of its train images
    (rounded half up; 16 -> 2), chosen with the subset library and the dataset's
    seed, named without the number (the configs name the same file for any size);
    ``toy_meta.json`` records them."""
    from mmwsss.datasets import choose_strong_subsets
    from mmwsss.datasets.toy_generator import strong_subset_meta
    with open(osp.join(toy_root, 'toy_meta.json')) as f:
        sub = json.load(f)['strong_subsets']
    assert sub == strong_subset_meta(16, 0)
    assert (sub['percent'], sub['num'], sub['seed']) == (10, 2, 0)
    assert sub['files'] == [
        'ImageSets/GAIN/pixel_10pct.txt', 'ImageSets/GAIN/box_10pct.txt',
        'ImageSets/GAIN/bp_10pct_pixel.txt', 'ImageSets/GAIN/bp_10pct_box.txt']
    pool = read_split_ids(osp.join(toy_root, 'ImageSets/Segmentation/train.txt'))
    lists = {f: read_split_ids(osp.join(toy_root, f)) for f in sub['files']}
    pixel = lists['ImageSets/GAIN/pixel_10pct.txt']
    assert pixel == choose_strong_subsets(pool, 2, 'pixel', seed=0)['pixel']
    assert lists['ImageSets/GAIN/box_10pct.txt'] == pixel
    assert sorted(lists['ImageSets/GAIN/bp_10pct_pixel.txt'] +
                  lists['ImageSets/GAIN/bp_10pct_box.txt']) == pixel
    with open(osp.join(toy_root, 'ImageSets/GAIN/pixel_10pct.txt')) as f:
        assert f.readline().startswith('# GAIN_ext pixel subset of 2')
    assert [strong_subset_meta(n, 0)['num'] for n in (1, 4, 5, 24, 25, 48, 400)] \
        == [1, 1, 1, 2, 3, 5, 40]


def test_strong_subsets_added_to_an_earlier_folder(tmp_path):
    """A folder made before the lists existed (its toy_meta.json has no
    ``strong_subsets``) gets them added in place, images untouched; the result is
    the folder a fresh run writes. Other parameters are still refused."""
    out, fresh = str(tmp_path / 'toy'), str(tmp_path / 'fresh')
    meta = make_toy_dataset(out, seed=2, num_train=12, num_val=2)
    make_toy_dataset(fresh, seed=2, num_train=12, num_val=2)
    import shutil
    shutil.rmtree(osp.join(out, 'ImageSets', 'GAIN'))
    old = {k: v for k, v in meta.items() if k != 'strong_subsets'}
    with open(osp.join(out, 'toy_meta.json'), 'w') as f:
        json.dump(old, f, indent=2)
    img = osp.join(out, 'JPEGImages', 'toy_train_00000.jpg')
    mtime = os.path.getmtime(img)
    assert make_toy_dataset(out, seed=2, num_train=12, num_val=2) == meta
    assert os.path.getmtime(img) == mtime
    files = _all_files(fresh)
    assert _all_files(out) == files
    _, mismatch, errors = filecmp.cmpfiles(out, fresh, files, shallow=False)
    assert not mismatch and not errors
    with open(osp.join(out, 'toy_meta.json'), 'w') as f:
        json.dump(dict(old, seed=3), f)
    with pytest.raises(FileExistsError, match='--overwrite'):
        make_toy_dataset(out, seed=2, num_train=12, num_val=2)
