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


def test_marker_is_small_and_class_specific(toy_root):
    """The class evidence that is *unique* to a class (its marker colour) covers a
    small part of the object, while the body texture is shared by all classes."""
    from mmwsss.datasets.toy_generator import _MARKER_COLORS
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
