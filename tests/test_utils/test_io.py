"""``atomic_write``: all-or-nothing writes with the permissions of a plain open."""
import os
import stat

import numpy as np
import pytest

from mmwsss.utils.io import atomic_write


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(str(tmp_path / 'a.json'), 'w') as f:
            f.write('{}')
        with open(tmp_path / 'plain.json', 'w') as f:
            f.write('{}')
        # mkstemp alone would give 0o600 (unreadable for a group sharing the data)
        assert _mode(tmp_path / 'a.json') == _mode(tmp_path / 'plain.json') == 0o644
        os.umask(0o077)
        with atomic_write(str(tmp_path / 'b.json'), 'w') as f:
            f.write('{}')
        assert _mode(tmp_path / 'b.json') == 0o600
    finally:
        os.umask(old)


def test_atomic_write_keeps_the_mode_of_an_existing_file(tmp_path):
    p = tmp_path / 'x.txt'
    p.write_text('old')
    os.chmod(p, 0o640)
    with atomic_write(str(p), 'w') as f:
        f.write('new')
    assert p.read_text() == 'new' and _mode(p) == 0o640


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    p = tmp_path / 'x.txt'
    p.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_write(str(p), 'w') as f:
            f.write('half')
            raise RuntimeError('stop')
    assert p.read_text() == 'old'
    assert sorted(os.listdir(tmp_path)) == ['x.txt']


@pytest.mark.parametrize('bad', [2.0, -1.0, float('nan'), 0.5])
def test_class_label_values_outside_0_1_are_refused(tmp_path, bad):
    """Image-level labels outside {0, 1} were accepted (a 2 trained as a stronger
    positive, a NaN poisoned the loss); the error names the file and the id."""
    from mmwsss.utils.io import load_class_labels
    path = str(tmp_path / 'cls_labels.npy')
    table = {'2007_000032': np.float32([1, 0, 0]),
             '2007_000039': np.float32([0, bad, 1])}
    np.save(path, table)
    with pytest.raises(ValueError, match=r"cls_labels.npy.*'2007_000039'"):
        load_class_labels(path)


def test_stale_temp_files_of_dead_writers_only(tmp_path):
    """A second run into the same folder removes the temporary files of killed runs
    but not those of a run that is still writing (concurrent --split train / val)."""
    import subprocess
    import time

    from mmwsss.utils.io import atomic_write, remove_stale_temp_files
    gone = subprocess.Popen(['true'])
    gone.wait()
    live = subprocess.Popen(['sleep', '60'])
    try:
        names = {
            'dead': f'.a.png.{gone.pid}-x1.tmp',
            'live': f'.b.png.{live.pid}-x2.tmp',
            'mine': f'.c.png.{os.getpid()}-x3.tmp',
            'other_suffix': f'.d.npz.{gone.pid}-x4.tmp',
            'old_style': '.e.png.k2j3.tmp',
        }
        for n in names.values():
            (tmp_path / n).write_bytes(b'partial')
        os.utime(tmp_path / names['old_style'], (1, 1))
        assert remove_stale_temp_files(str(tmp_path), suffix='.png') == 1
        left = set(os.listdir(tmp_path))
        assert names['dead'] not in left
        assert {names['live'], names['mine'], names['other_suffix'],
                names['old_style']} <= left
        # pid-less files: only when older than the run's start
        assert remove_stale_temp_files(str(tmp_path), suffix='.png',
                                       older_than=time.time()) == 1
        assert names['old_style'] not in os.listdir(tmp_path)
    finally:
        live.kill()
        live.wait()
    # atomic_write names its writer
    with atomic_write(str(tmp_path / 'f.png')) as f:
        tmp_names = [n for n in os.listdir(tmp_path) if n.startswith('.f.png.')]
        f.write(b'x')
    assert len(tmp_names) == 1
    assert tmp_names[0].startswith(f'.f.png.{os.getpid()}-')
    assert tmp_names[0].endswith('.tmp')


# ----------------------------------------------- OAA's train_cls.txt labels
def test_class_list_txt_is_read(tmp_path):
    """OAA's training list: an id and its 0-based foreground class indices per
    line; an id without index is label-less; ids may be paths; comments skipped."""
    from mmwsss.utils.io import load_class_labels
    path = tmp_path / 'train_cls.txt'
    path.write_text('# OAA list\n2007_000032 0 14\n2007_000039 19\n\n'
                    '/JPEGImages/2007_000063.jpg 8 11 8\n2007_000068\n')
    table = load_class_labels(str(path), num_classes=20)
    assert table.num_classes == 20 and len(table) == 4
    assert np.flatnonzero(table['2007_000032']).tolist() == [0, 14]
    assert np.flatnonzero(table['2007_000039']).tolist() == [19]
    assert np.flatnonzero(table['2007_000063']).tolist() == [8, 11]
    assert not table['2007_000068'].any()
    assert table['2007_000032'].dtype == np.float32
    assert '2008_000001' not in table


@pytest.mark.parametrize('line,bad', [
    ('2007_000039 20', "'20'"), ('2007_000039 -1', "'-1'"),
    ('2007_000039 3.5', "'3.5'"), ('2007_000039 cat', "'cat'")])
def test_class_list_bad_index_names_file_and_line(tmp_path, line, bad):
    from mmwsss.utils.io import load_class_labels
    path = tmp_path / 'train_cls.txt'
    path.write_text(f'2007_000032 0 14\n{line}\n')
    with pytest.raises(ValueError) as e:
        load_class_labels(str(path), num_classes=20)
    msg = str(e.value)
    assert str(path) in msg and 'line 2' in msg and bad in msg
    assert '0..19' in msg


def test_class_list_needs_num_classes_and_consistent_lines(tmp_path):
    from mmwsss.utils.io import load_class_labels
    path = tmp_path / 'train_cls.txt'
    path.write_text('2007_000032 0 14\n')
    with pytest.raises(ValueError, match='num_classes'):
        load_class_labels(str(path))
    path.write_text('2007_000032 0 14\n2007_000032 14 0\n2007_000032 1\n')
    with pytest.raises(ValueError, match=r"'2007_000032'.*lines 2 and 3"):
        load_class_labels(str(path), num_classes=20)
    path.write_text('\n# nothing\n')
    with pytest.raises(ValueError, match='lists no image'):
        load_class_labels(str(path), num_classes=20)
