"""Every tool under tools/ is written the same way: mmwsss imported as installed (no
``sys.path`` edits), errors through :func:`mmwsss.utils.cli.run_tool` (one line with the
cause and the fix, no catch-all ``except Exception``), and runs from any directory."""
import ast
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.test_tools.test_bad_inputs import error_line, run_inprocess

TOOLS = sorted(
    osp.relpath(p, osp.join(REPO, 'tools'))
    for p in glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True))


def test_tools_are_found():
    assert {'train.py', 'test.py', 'eval_seeds.py', 'make_pseudo_labels.py',
            'export_oaa_maps.py', 'dataset_converters/voc_aug.py',
            'model_converters/vgg16_to_mmwsss.py',
            'misc/demo_summary.py'} <= set(TOOLS)


def _main_block(tree):
    for node in tree.body:
        if isinstance(node, ast.If) and '__main__' in ast.unparse(node.test):
            return node
    return None


@pytest.mark.parametrize('tool', TOOLS)
def test_one_dialect(tool):
    path = osp.join(REPO, 'tools', tool)
    src = open(path).read()
    tree = ast.parse(src)
    assert 'sys.path' not in src, (
        f'{tool}: edits sys.path; mmwsss is imported as installed '
        '(pip install -e .), like tools/train.py')
    block = _main_block(tree)
    assert block is not None, f'{tool}: no `if __name__ == "__main__":`'
    assert ast.unparse(block.body[-1]).startswith('run_tool('), (
        f'{tool}: the entry point must be run_tool(main) '
        '(mmwsss/utils/cli.py: one-line errors)')
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            caught = ast.unparse(node.type) if node.type is not None else ''
            assert caught not in ('', 'Exception', 'BaseException'), (
                f'{tool}:{node.lineno}: a catch-all except hides the cause; catch '
                'the errors you expect and raise a ToolError naming the file')
        if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                'sys.exit', 'exit', 'SystemExit'):
            raise AssertionError(
                f'{tool}:{node.lineno}: exits by itself; raise a ToolError '
                '(run_tool prints it as one line)')


def test_tools_run_outside_the_repository(tmp_path):
    """From another directory, without the repository on PYTHONPATH (mmwsss as
    installed): every tool parses its arguments (``--help``)."""
    driver = tmp_path / 'driver.py'
    driver.write_text(textwrap.dedent(f"""
        import contextlib, io, runpy, sys
        bad = []
        for tool in {TOOLS!r}:
            sys.argv = [tool, '--help']
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    runpy.run_path({osp.join(REPO, 'tools')!r} + '/' + tool,
                                   run_name='__main__')
                code = 0
            except SystemExit as e:
                code = e.code
            if code not in (0, None) or 'usage:' not in out.getvalue():
                bad.append((tool, code, out.getvalue()[-300:]))
        print('BAD', bad)
        sys.exit(1 if bad else 0)
        """))
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    env.setdefault('OMP_NUM_THREADS', '1')
    p = subprocess.run([sys.executable, str(driver)], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


@pytest.mark.parametrize('converter', ['deeplab_resnet_to_mmwsss.py',
                                       'vgg16_to_mmwsss.py'])
@pytest.mark.parametrize('damage', ['truncated', 'text', 'missing', 'foreign'])
def test_model_converters_name_an_unreadable_checkpoint(tmp_path, converter,
                                                        damage):
    src = tmp_path / 'src.pth'
    if damage != 'missing':
        torch.save({'conv1.weight': torch.zeros(4, 3, 3, 3)}, src)
    if damage == 'truncated':
        src.write_bytes(src.read_bytes()[:100])
    elif damage == 'text':
        src.write_text('not a checkpoint\n')
    dst = tmp_path / 'dst.pth'
    p = run_inprocess(f'model_converters/{converter}', src, dst)
    line = error_line(p, converter)
    assert str(src) in line
    if damage == 'foreign':  # readable, but not the weights of that model
        assert 'missing' in line or 'not those' in line, line
    else:
        assert 'cannot read the checkpoint' in line and 'torch.save' in line
    assert not dst.exists()


def test_voc_converter_names_a_damaged_sbd_file(tmp_path):
    from mmwsss.datasets.format_trees import make_voc_format_tree
    meta = make_voc_format_tree(str(tmp_path / 'voc'), seed=0, num_voc_train=2,
                                num_voc_val=1, num_sbd_only=2)
    mat = osp.join(meta['sbd_root'], 'cls', meta['sbd_only'][0] + '.mat')
    open(mat, 'wb').write(open(mat, 'rb').read()[:40])
    p = run_inprocess('dataset_converters/voc_aug.py', '--voc-root',
                      meta['voc_root'], '--sbd-root', meta['sbd_root'])
    line = error_line(p, 'voc_aug.py')
    assert mat in line and 'not an SBD class annotation' in line
    assert 'docs/datasets.md' in line
    # the split lists and class labels are written last: not at all here
    assert not osp.exists(osp.join(meta['voc_root'], 'ImageSets',
                                   'Segmentation', 'train_aug.txt'))
    assert not osp.exists(osp.join(meta['voc_root'], 'cls_labels.npy'))


def _oaa_checkpoint(path):
    from mmwsss.engine.hooks.attention_store import AttentionStore
    from mmwsss.engine.hooks.oaa_hook import STATE_KEY
    store = AttentionStore('max')
    store.update('a', 1, np.full((4, 4), 0.5, np.float32))
    torch.save({STATE_KEY: dict(cumulative=store.state_dict(), image_ids=['a'],
                                ori_shapes=[(8, 6)], num_classes=2)}, path)


def test_export_oaa_maps_errors_are_one_line(tmp_path):
    ckpt = tmp_path / 'oaa.pth'
    _oaa_checkpoint(ckpt)
    ids = tmp_path / 'ids.txt'
    ids.write_text('a\nzz\n')
    p = run_inprocess('export_oaa_maps.py', ckpt, '--out', tmp_path / 'maps',
                      '--ids-file', ids, '--no-progress')
    line = error_line(p, 'export_oaa_maps.py')
    assert '1 id(s) of' in line and 'zz' in line and '--ids-file' in line
    assert not osp.exists(tmp_path / 'maps' / 'a.npz')
    # a checkpoint without OAA state / an unreadable file
    torch.save({'meta': {}}, tmp_path / 'plain.pth')
    line = error_line(
        run_inprocess('export_oaa_maps.py', tmp_path / 'plain.pth', '--out',
                      tmp_path / 'x'), 'export_oaa_maps.py')
    assert 'OAAHook' in line
    (tmp_path / 'bad.pth').write_bytes(b'\x00' * 10)
    line = error_line(
        run_inprocess('export_oaa_maps.py', tmp_path / 'bad.pth', '--out',
                      tmp_path / 'x'), 'export_oaa_maps.py')
    assert 'bad.pth: cannot read the checkpoint' in line
    # and the good case
    p = run_inprocess('export_oaa_maps.py', ckpt, '--out', tmp_path / 'maps',
                      '--no-progress')
    assert p.returncode == 0, p.stderr
    assert os.listdir(tmp_path / 'maps') == ['a.npz']


def test_demo_summary_missing_file_is_one_line(tmp_path):
    line = error_line(run_inprocess('misc/demo_summary.py', tmp_path),
                      'demo_summary.py')
    assert 'seg_pseudo_metrics_single.json' in line and 'tools/demo.sh' in line


def test_demo_summary_table():
    from runpy import run_path
    table = run_path(osp.join(REPO, 'tools', 'misc', 'demo_summary.py'),
                     run_name='not_main')['table']
    summary = dict(method='oaa', method_name='OAA',
                   seed_miou=dict(cam=46.8049, oaa=41.0051),
                   pseudo_label_miou=71.5, pseudo_label_ignored_ratio=3.0,
                   seg_miou=dict(pseudo=None, gt=80.0),
                   seg_miou_tta_crf=dict(pseudo=float('nan'), gt=81.234))
    lines = table(json.loads(json.dumps(summary))).splitlines()
    assert lines[0].endswith('  mIoU (%)')
    values = [ln[-8:] for ln in lines[2:]]
    assert values == ['   46.80', '   41.01', '   71.50', '     n/a', '     n/a',
                      '   80.00', '   81.23']
    assert lines[2].startswith('seeds: CAM of the OAA classifier (train)')
    assert lines[3].startswith('seeds: OAA (train)')
    # a method whose seeds are its classifier's CAMs has one seed row
    summary.update(method='cam', method_name='CAM', seed_miou=dict(cam=46.8049))
    lines = table(summary).splitlines()
    assert [ln for ln in lines if ln.startswith('seeds')] == [
        'seeds: CAM (train)'.ljust(len(lines[2]) - 8) + '   46.80']
