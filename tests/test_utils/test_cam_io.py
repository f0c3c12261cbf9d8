import os

import numpy as np
import pytest

from mmwsss.utils.cam_io import CamRecord, cam_path, load_cam, save_cam


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    cams = rng.random((2, 7, 9)).astype(np.float32)
    p = cam_path(str(tmp_path), 'img1')
    save_cam(p, cams, [4, 1], num_classes=6, scores=np.linspace(0, 1, 6))
    rec = load_cam(p)
    # stored in ascending class order
    assert rec.labels.tolist() == [1, 4] and rec.num_classes == 6
    np.testing.assert_allclose(rec.cams, cams[::-1], atol=1e-3)  # float16
    dense = rec.dense()
    assert dense.shape == (6, 7, 9)
    np.testing.assert_allclose(dense[4], cams[0], atol=1e-3)
    assert dense[[0, 2, 3, 5]].sum() == 0
    assert rec.scores.shape == (6, )
    assert [f for f in os.listdir(tmp_path)] == ['img1.npz']


def test_seed_rule():
    cams = np.array([[[0.9, 0.2, 0.5]], [[0.1, 0.6, 0.5]]], np.float32)
    rec = CamRecord(cams, np.array([2, 0]), 3)
    # argmax([t, cams]) with ties to background, then to the lowest class
    assert rec.labels.tolist() == [0, 2]
    assert rec.seed(0.3).tolist() == [[3, 1, 1]]
    assert rec.seed(0.5).tolist() == [[3, 1, 0]]
    assert CamRecord(np.zeros((0, 1, 2), np.float32), np.zeros(0, int),
                     3).seed(0.1).tolist() == [[0, 0]]


def test_validation(tmp_path):
    p = str(tmp_path / 'a.npz')
    with pytest.raises(ValueError, match='out of range'):
        save_cam(p, np.zeros((1, 2, 2)), [5], num_classes=5)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        save_cam(p, np.full((1, 2, 2), 2.0), [0], num_classes=5)
    with pytest.raises(ValueError, match='K = len'):
        save_cam(p, np.zeros((2, 2, 2)), [0], num_classes=5)
    assert not os.listdir(tmp_path)  # nothing half-written
    with pytest.raises(FileNotFoundError, match='a.npz'):
        load_cam(p)
    (tmp_path / 'bad.npz').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='bad.npz.*not a readable'):
        load_cam(str(tmp_path / 'bad.npz'))


def _raw_cam(path, cams):
    np.savez(path, cams=np.asarray(cams, np.float16), labels=np.int16([0]),
             num_classes=np.int32(3), version=np.int32(1))


@pytest.mark.parametrize('damage', ['empty', 'truncated', 'nan', 'inf', 'range'])
def test_unusable_cam_files_name_the_file(tmp_path, damage):
    """Truncated / zero-byte files (BadZipFile, EOFError) and non-finite values
    used to escape as bare decoder errors, or (NaN) to become full-image classes in
    the pseudo-label job; each is a CamFileError naming the file."""
    from mmwsss.utils.cam_io import CamFileError
    p = str(tmp_path / f'{damage}.npz')
    if damage in ('empty', 'truncated'):
        save_cam(p, np.random.rand(1, 40, 40), [0], num_classes=3)
        data = open(p, 'rb').read()
        open(p, 'wb').write(b'' if damage == 'empty' else data[:len(data) // 2])
        match = 'not a readable'
    else:
        value = {'nan': np.nan, 'inf': np.inf, 'range': 3.0}[damage]
        cams = np.zeros((1, 4, 4))
        cams[0, 1, 1] = value
        _raw_cam(p, cams)
        match = 'NaN or inf' if damage != 'range' else r'in \[0, 1\]'
    with pytest.raises(CamFileError, match=f'{damage}.npz.*{match}'):
        load_cam(p)
