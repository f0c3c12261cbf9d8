"""Bad inputs end in one line that names the file (or key) and the fix, a non-zero exit
and no traceback (``MMWSSS_DEBUG=1`` shows it), and leave nothing half-written.

The tools run in-process (``runpy``: the same argument parsing, error handler and exit
message as a subprocess, without the imports) where they can.
"""
import contextlib
import errno
import io
import json
import os
import os.path as osp
import runpy
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

TOY_CONFIG = osp.join(REPO, 'configs', 'toy', 'cam_r18_toy.py')


def run_inprocess(script, *args, env=None):
    """``python tools/SCRIPT ARGS`` in this process; a CompletedProcess."""
    out, err = io.StringIO(), io.StringIO()
    old_argv, old_env = sys.argv, dict(os.environ)
    sys.argv = [script] + [str(a) for a in args]
    os.environ.update(env or {})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(osp.join(REPO, 'tools', script), run_name='__main__')
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old_argv
        os.environ.clear()
        os.environ.update(old_env)
    if isinstance(code, str):  # what the interpreter does with sys.exit(msg)
        err.write(code + '\n')
        code = 1
    return subprocess.CompletedProcess(args, code or 0, out.getvalue(),
                                       err.getvalue())


def error_line(p, tool):
    assert p.returncode != 0, p.stdout[-2000:]
    assert 'Traceback' not in p.stderr, p.stderr[-4000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith(f'{osp.basename(tool)}: error: '), lines
    assert 'MMWSSS_DEBUG=1' in lines[-1]
    return lines[-1]


def _make_cams(root, out):
    from mmwsss.utils.cam_io import cam_path, save_cam
    from mmwsss.utils.io import read_label_png, read_split_ids
    ids = read_split_ids(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt'))
    for i in ids:
        gt = read_label_png(osp.join(root, 'SegmentationClass', i + '.png'))
        labels = sorted(int(c) - 1 for c in np.unique(gt) if 0 < c < 255)
        cams = np.stack([(gt == c + 1).astype(np.float32) * 0.9 for c in labels])
        save_cam(cam_path(out, i), cams, labels, num_classes=8)
    return ids


@pytest.mark.parametrize('damage', ['jpeg', 'gt_png'])
def test_damaged_image_files_are_named(toy_copy, tmp_path, damage):
    """A truncated JPEG (pseudo labels with a CRF read the image) or a corrupt GT PNG
    (seed evaluation) used to end in PIL's "image file is truncated" with no name."""
    cams = str(tmp_path / 'cams')
    ids = _make_cams(toy_copy, cams)
    bad_id = ids[6]
    if damage == 'jpeg':
        path = osp.join(toy_copy, 'JPEGImages', bad_id + '.jpg')
    else:
        path = osp.join(toy_copy, 'SegmentationClass', bad_id + '.png')
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])
    if damage == 'jpeg':
        p = run_inprocess('make_pseudo_labels.py', TOY_CONFIG, cams, '--out',
                          tmp_path / 'labels', '--rule', 'ThresholdBackground',
                          '--rule-options', 'crf=irn_label', '--no-progress',
                          *_opts(toy_copy))
        line = error_line(p, 'make_pseudo_labels.py')
    else:
        p = run_inprocess('eval_seeds.py', cams, TOY_CONFIG, '--no-progress',
                          *_opts(toy_copy))
        line = error_line(p, 'eval_seeds.py')
    assert path in line and 'cannot decode' in line


@pytest.fixture
def toy_cams(toy_root, tmp_path):
    """Plain CAM files of the toy train split (blurred GT masks)."""
    out = str(tmp_path / 'cams')
    return out, _make_cams(toy_root, out)


def _opts(toy_root):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={toy_root}']


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'nan'])
def test_seed_evaluation_names_a_bad_cam_file(toy_root, toy_cams, damage):
    cams, ids = toy_cams
    path = osp.join(cams, ids[3] + '.npz')
    if damage == 'nan':
        with np.load(path) as z:
            arrays = dict(z)
        arrays['cams'] = arrays['cams'].copy()
        arrays['cams'][0, 0, 0] = np.nan
        np.savez(path, **arrays)
    else:
        data = open(path, 'rb').read()
        open(path, 'wb').write(b'' if damage == 'empty' else data[:len(data) // 3])
    p = run_inprocess('eval_seeds.py', cams, TOY_CONFIG, '--no-progress',
                      *_opts(toy_root))
    line = error_line(p, 'eval_seeds.py')
    assert f'{ids[3]}.npz' in line
    assert 'export it again' in line


def test_pseudo_labels_refuse_a_nan_cam(toy_root, toy_cams, tmp_path):
    """A NaN CAM used to become a full-image class in the pseudo labels."""
    cams, ids = toy_cams
    path = osp.join(cams, ids[5] + '.npz')
    with np.load(path) as z:
        arrays = dict(z)
    arrays['cams'] = np.full_like(arrays['cams'], np.nan)
    np.savez(path, **arrays)
    out = str(tmp_path / 'labels')
    p = run_inprocess('make_pseudo_labels.py', TOY_CONFIG, cams, '--out', out,
                      '--rule', 'ThresholdBackground', '--no-progress',
                      *_opts(toy_root))
    line = error_line(p, 'make_pseudo_labels.py')
    assert f'{ids[5]}.npz' in line and 'NaN' in line
    assert not osp.isfile(osp.join(out, ids[5] + '.png'))


def test_rule_option_typo_names_the_argument(toy_root, toy_cams, tmp_path):
    cams, _ = toy_cams
    p = run_inprocess('make_pseudo_labels.py', TOY_CONFIG, cams, '--out',
                      tmp_path / 'labels', '--rule', 'ThresholdBackground',
                      '--rule-options', 'threshhold=0.2', '--no-progress',
                      *_opts(toy_root))
    line = error_line(p, 'make_pseudo_labels.py')
    assert "['threshhold']" in line and "'threshold'" in line


def test_debug_env_shows_the_traceback(toy_root, toy_cams, tmp_path):
    cams, _ = toy_cams
    with pytest.raises(ValueError, match='threshhold'):
        run_inprocess('make_pseudo_labels.py', TOY_CONFIG, cams, '--out',
                      tmp_path / 'labels', '--rule', 'ThresholdBackground',
                      '--rule-options', 'threshhold=0.2', '--no-progress',
                      *_opts(toy_root), env={'MMWSSS_DEBUG': '1'})


def test_disk_full_is_one_line(capsys):
    from mmwsss.utils.cli import run_tool

    def main():
        raise OSError(errno.ENOSPC, 'No space left on device',
                      '/data/PseudoLabels/2007_000032.png')

    with pytest.raises(SystemExit) as e:
        run_tool(main, name='make_pseudo_labels.py')
    assert str(e.value.code).startswith(
        'make_pseudo_labels.py: error: [Errno 28] No space left on device: '
        "'/data/PseudoLabels/2007_000032.png'; free some disk space")


def test_a_failed_write_names_its_file(tmp_path):
    """A write that fails with ENOSPC (no file name in the error) names the file
    it was writing; nothing is left behind."""
    from mmwsss.utils.io import atomic_write
    target = str(tmp_path / 'out' / '2007_000032.png')
    with pytest.raises(OSError) as e:
        with atomic_write(target) as f:
            f.write(b'half')
            raise OSError(errno.ENOSPC, 'No space left on device')
    assert e.value.errno == errno.ENOSPC and e.value.filename == target
    assert os.listdir(tmp_path / 'out') == []


def test_unexpected_errors_keep_their_traceback():
    """A bug is not a bad input: it is not turned into one line."""
    from mmwsss.utils.cli import run_tool

    def main():
        raise ZeroDivisionError('a bug')

    with pytest.raises(ZeroDivisionError):
        run_tool(main, name='x.py')


# --------------------------------------------------------------- converters
def _tree_listing(root):
    return sorted(osp.relpath(osp.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


@pytest.mark.parametrize('damage', ['json', 'key', 'image_key'])
def test_coco_converter_names_the_file_and_writes_nothing(tmp_path, damage):
    from mmwsss.datasets.format_trees import make_coco_format_tree
    meta = make_coco_format_tree(str(tmp_path / 'coco'), seed=0, num_train=3,
                                 num_val=2)
    root = meta['root']
    bad = osp.join(root, 'annotations', 'instances_val2014.json')
    if damage == 'json':
        text = open(bad).read()
        open(bad, 'w').write(text[:len(text) // 2])
    else:
        coco = json.load(open(bad))
        if damage == 'key':
            del coco['categories']
        else:
            del coco['images'][1]['height']
        json.dump(coco, open(bad, 'w'))
    before = _tree_listing(root)
    p = run_inprocess('dataset_converters/coco_wsss.py', '--coco-root', root)
    line = error_line(p, 'coco_wsss.py')
    assert 'instances_val2014.json' in line
    assert {'json': 'not valid JSON', 'key': "['categories']",
            'image_key': "lacks ['height']"}[damage] in line
    # train2014 was fine, but nothing of it was written either
    assert _tree_listing(root) == before


def test_voc_converter_checks_before_writing(tmp_path):
    from mmwsss.datasets.format_trees import make_voc_format_tree
    meta = make_voc_format_tree(str(tmp_path / 'voc'), seed=0, num_voc_train=2,
                                num_voc_val=1, num_sbd_only=2)
    xml = osp.join(meta['voc_root'], 'Annotations', meta['voc_val'][0] + '.xml')
    text = open(xml).read()
    import re
    open(xml, 'w').write(re.sub(r'<name>\w+</name>', '<name>unicorn</name>', text,
                                count=1))
    before = _tree_listing(meta['root'])
    p = run_inprocess('dataset_converters/voc_aug.py', '--voc-root',
                      meta['voc_root'], '--sbd-root', meta['sbd_root'])
    line = error_line(p, 'voc_aug.py')
    assert f'{meta["voc_val"][0]}.xml' in line and "'unicorn'" in line
    assert _tree_listing(meta['root']) == before


def test_two_concurrent_pseudo_label_runs_into_one_folder(toy_root, tmp_path):
    """``--split train`` and ``--split val`` at once into one folder: neither deletes
    the other's temporary files (a live writer's file is kept, a dead one's goes),
    both finish, every label is complete."""
    from tests.conftest import run_env
    from mmwsss.utils.cam_io import cam_path, save_cam
    from mmwsss.utils.io import read_label_png, read_split_ids
    cams = str(tmp_path / 'cams')
    ids = {}
    for split in ('train', 'val'):
        ids[split] = read_split_ids(osp.join(toy_root, 'ImageSets', 'Segmentation',
                                             f'{split}.txt'))
        for i in ids[split]:
            gt = read_label_png(osp.join(toy_root, 'SegmentationClass', i + '.png'))
            labels = sorted(int(c) - 1 for c in np.unique(gt) if 0 < c < 255)
            save_cam(cam_path(cams, i), np.stack(
                [(gt == c + 1).astype(np.float32) for c in labels]), labels, 8)
    out = tmp_path / 'labels'
    out.mkdir()
    gone = subprocess.Popen(['true'])
    gone.wait()
    live = subprocess.Popen(['sleep', '120'])
    try:
        live_tmp = out / f'.other.png.{live.pid}-x.tmp'
        dead_tmp = out / f'.killed.png.{gone.pid}-x.tmp'
        live_tmp.write_bytes(b'half')
        dead_tmp.write_bytes(b'half')
        procs = [
            subprocess.Popen(
                [sys.executable, osp.join(REPO, 'tools', 'make_pseudo_labels.py'),
                 TOY_CONFIG, cams, '--out', str(out), '--split', split, '--rule',
                 'ThresholdBackground', '--rule-options', 'crf=irn_label',
                 '--workers', '2', '--no-progress', '--cfg-options',
                 f'{split}_dataloader.dataset.data_root={toy_root}',
                 # the toy classifier's val split is train.txt (as VOC's)
                 f'{split}_dataloader.dataset.ann_file=ImageSets/Segmentation/'
                 f'{split}.txt'],
                cwd=REPO, env=run_env(), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True) for split in ('train', 'val')
        ]
        for p in procs:
            stdout, stderr = p.communicate(timeout=600)
            assert p.returncode == 0, stdout[-2000:] + stderr[-4000:]
        assert live_tmp.exists() and not dead_tmp.exists()
    finally:
        live.kill()
        live.wait()
    live_tmp.unlink()
    names = sorted(os.listdir(out))
    assert names == sorted(i + '.png' for i in ids['train'] + ids['val'])
    for n in names:
        read_label_png(str(out / n))  # complete files
