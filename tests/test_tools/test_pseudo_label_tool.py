"""tools/make_pseudo_labels.py on the toy set: outputs, determinism across workers,
resumption, scores, every rule, one-line errors and no half-written files.

A tool subprocess spends about 4 s importing torch & co, so the module-scoped fixture
``runs`` starts every subprocess of the module at once (a few at a time, in threads)
and the tests only read the results. Most error cases run the tool's ``__main__``
in-process (``runpy``: the same argument parsing, error handler and exit message
without the imports); three of them, and every successful run, are real
subprocesses.
"""
import contextlib
import io
import json
import os
import os.path as osp
import runpy
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, run_env

CONFIG = osp.join(REPO, 'configs', 'toy', 'cam_r18_toy.py')
TOOL = osp.join('tools', 'make_pseudo_labels.py')
NUM_CLASSES = 8
N_TRAIN = 16
PARALLEL = 3
PSA = ['--rule', 'ThresholdBackground', '--rule-options', 'crf=psa',
       'crf_unary=one_minus_max']
BAD = 'toy_train_00008'  # an id in the middle of the split
IS_ROOT = hasattr(os, 'geteuid') and os.geteuid() == 0


# ----------------------------------------------------------------- helpers
def _gt_cams(gt, labels, seed, size=None):
    """Plausible CAMs from the GT mask: blurred class masks + noise, max 1."""
    import cv2
    rng = np.random.default_rng(seed)
    cams = []
    for c in labels:
        m = cv2.GaussianBlur((gt == c + 1).astype(np.float32), (0, 0), 1.5)
        m = np.clip(m + rng.normal(0, 0.03, m.shape).astype(np.float32), 0,
                    None)
        if size is not None:
            m = cv2.resize(m, size, interpolation=cv2.INTER_LINEAR)
        cams.append(np.clip(m / max(float(m.max()), 1e-6), 0, 1))
    return np.stack(cams).astype(np.float32)


def _cmd(py, toy_root, cam_dir, out, *extra):
    return ([py, TOOL, CONFIG, cam_dir, '--out', out, '--no-progress'] +
            list(extra) +
            ['--cfg-options', f'train_dataloader.dataset.data_root={toy_root}'])


def _run(args, timeout=300, env=None):
    full_env = run_env()
    full_env.update(env or {})
    return subprocess.run(args, cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def _run_inprocess(args):
    """``python TOOL ARGS`` in this process (``args`` as for :func:`_run`); exit
    status and output like a subprocess. Only for runs with one worker."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = list(args[1:])
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(osp.join(REPO, TOOL), run_name='__main__')
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old
    if isinstance(code, str):  # what the interpreter does with sys.exit(msg)
        err.write(code + '\n')
        code = 1
    return subprocess.CompletedProcess(args, code or 0, out.getvalue(),
                                       err.getvalue())


def _ok(p):
    assert p.returncode == 0, p.stdout[-3000:] + '\n' + p.stderr[-5000:]
    return p


def _error_line(p):
    """The tool failed with a one-line message (no traceback); return it."""
    assert p.returncode != 0, p.stdout[-2000:]
    assert 'Traceback' not in p.stderr, p.stderr[-5000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines, p.stdout[-2000:]
    assert lines[-1].startswith('make_pseudo_labels.py: error: '), lines[-1]
    return lines[-1]


def _pngs(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith('.png'))


def _temp_files(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith('.'))


def _assert_complete(folder, size=(128, 128)):
    """Every (non-hidden) file is a complete, readable palette PNG."""
    for name in os.listdir(folder):
        if name.startswith('.'):
            continue
        assert name.endswith('.png'), name
        path = osp.join(folder, name)
        with Image.open(path) as img:
            img.verify()  # checks the PNG chunks / CRCs
        with Image.open(path) as img:
            assert img.mode == 'P'
            arr = np.asarray(img)
        assert arr.shape == size


def _assert_clean(folder, size=(128, 128)):
    """No temporary files; every PNG is complete and readable."""
    assert not _temp_files(folder), os.listdir(folder)
    _assert_complete(folder, size)


def _assert_no_temp_files(folder):
    """A stopped pool leaves no temporary file (workers unwind atomic_write on
    SIGTERM)."""
    assert not _temp_files(folder), _temp_files(folder)


def _read(path):
    with Image.open(path) as img:
        return img.mode, np.asarray(img).copy()


def _bytes(folder):
    out = {}
    for name in _pngs(folder):
        with open(osp.join(folder, name), 'rb') as f:
            out[name] = f.read()
    return out


def _counts(p):
    line = [ln for ln in p.stdout.splitlines() if ln.startswith('wrote ')]
    assert line, p.stdout[-2000:]
    return line[-1]


# ----------------------------------------------------------------- inputs
@pytest.fixture(scope='module')
def toy(toy_root):
    """ids, image-level labels and GT of the toy train split."""
    from mmwsss.utils.io import read_label_png, read_split_ids
    ids = read_split_ids(
        osp.join(toy_root, 'ImageSets', 'Segmentation', 'train.txt'))
    cls = np.load(osp.join(toy_root, 'cls_labels.npy'),
                  allow_pickle=True).item()
    assert len(ids) == N_TRAIN and BAD in ids
    labels = {i: np.nonzero(cls[i])[0] for i in ids}
    gts = {
        i: read_label_png(osp.join(toy_root, 'SegmentationClass', i + '.png'))
        for i in ids
    }
    return dict(root=toy_root, ids=ids, labels=labels, gts=gts)


@pytest.fixture(scope='module')
def cams(toy, tmp_path_factory):
    from mmwsss.utils.cam_io import cam_path, save_cam
    out = str(tmp_path_factory.mktemp('pl_cams') / 'cams')
    for n, i in enumerate(toy['ids']):
        save_cam(cam_path(out, i), _gt_cams(toy['gts'][i], toy['labels'][i], n),
                 toy['labels'][i], num_classes=NUM_CLASSES)
    return out


# ``python slow_io.py TOOL ARGS``: the tool with a slow CAM read for one id and slow
# PNG writes (inside the temporary-file window of ``atomic_write``); the patches are
# inherited by the forked pool workers.
SLOW_IO_WRAPPER = '''
import os, runpy, sys, time
import PIL.Image
import mmwsss.pseudo.job as job
_save, _load = PIL.Image.Image.save, job.load_cam
def save(self, fp, *args, **kwargs):
    _save(self, fp, *args, **kwargs)
    time.sleep(float(os.environ['SLOW_WRITE_S']))
def load_cam(path):
    if os.environ['SLOW_LOAD_ID'] in path:
        time.sleep(2)
    return _load(path)
PIL.Image.Image.save = save
job.load_cam = load_cam
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _error_cases(toy, cams, base, py):
    """name -> dict(cmd, out, cam_dir, sub): one broken input each."""
    from mmwsss.utils.cam_io import cam_path, save_cam
    root = toy['root']
    cases = {}

    def cam_copy(name):
        d = str(base / f'{name}_cams')
        shutil.copytree(cams, d)
        return d

    def case(name, cam_dir, *extra, out=None, sub=False):
        out = out or str(base / f'{name}_out')
        cases[name] = dict(cmd=_cmd(py, root, cam_dir, out, *extra), out=out,
                           cam_dir=cam_dir, sub=sub)

    # a CAM file missing for two ids
    d = cam_copy('missing')
    for i in ('toy_train_00005', 'toy_train_00011'):
        os.remove(cam_path(d, i))
    case('missing_cam', d, '--rule', 'ThresholdBackground')

    # saliency maps for the first 10 ids only
    sal = str(base / 'partial_saliency')
    os.makedirs(sal)
    for i in toy['ids'][:10]:
        shutil.copy(osp.join(root, 'SaliencyMaps', i + '.png'), sal)
    case('saliency', cams, '--rule', 'SaliencyBackground', '--saliency-dir',
         sal)

    # one CAM at 64x64 (the images are 128x128), in the middle of the split;
    # a CRF rule with 2 workers: the error comes from a pool worker
    d = cam_copy('small')
    save_cam(cam_path(d, BAD),
             _gt_cams(toy['gts'][BAD], toy['labels'][BAD], 0, size=(64, 64)),
             toy['labels'][BAD], num_classes=NUM_CLASSES)
    case('size_crf', d, *PSA, '--workers', '2', sub=True)
    case('size_plain', d, '--rule', 'ThresholdBackground')

    # a class index (9) beyond num_classes=8 (save_cam would refuse it)
    d = cam_copy('beyond')
    cam = _gt_cams(toy['gts'][BAD], toy['labels'][BAD], 0)
    np.savez(
        cam_path(d, BAD),
        cams=np.concatenate([cam, cam[:1]]).astype(np.float16),
        labels=np.concatenate([toy['labels'][BAD], [9]]).astype(np.int16),
        num_classes=np.int32(NUM_CLASSES),
        version=np.int32(1))
    case('beyond', d, '--rule', 'ThresholdBackground')

    # CAMs of another dataset (num_classes=20) for one id, 1 worker: the ids
    # before it are written, then the job stops
    d = cam_copy('num_classes')
    save_cam(cam_path(d, BAD), cam, toy['labels'][BAD], num_classes=20)
    case('num_classes', d, '--rule', 'ThresholdBackground', '--workers', '1',
         sub=True)

    # one worker fails (num_classes mismatch of the first id, its CAM read
    # slowed down by 2 s) while the other one is inside an atomic PNG write
    # (slowed down by 8 s, the temporary file is open): the job stops
    d = cam_copy('leak')
    first = toy['ids'][0]
    save_cam(cam_path(d, first),
             _gt_cams(toy['gts'][first], toy['labels'][first], 0),
             toy['labels'][first], num_classes=20)
    wrapper = str(base / 'slow_io.py')
    with open(wrapper, 'w') as f:
        f.write(SLOW_IO_WRAPPER)
    case('leak', d, '--rule', 'ThresholdBackground', '--workers', '2',
         sub=True)
    cases['leak']['cmd'].insert(1, wrapper)
    cases['leak']['env'] = dict(SLOW_LOAD_ID=first, SLOW_WRITE_S='8')

    # output folders that cannot be written
    blocker = str(base / 'a_file')
    with open(blocker, 'w') as f:
        f.write('not a folder')
    case('out_under_file', cams, '--rule', 'ThresholdBackground',
         out=osp.join(blocker, 'labels'))
    if not IS_ROOT:
        ro = str(base / 'read_only')
        os.makedirs(ro)
        os.chmod(ro, 0o500)
        case('read_only', cams, '--rule', 'ThresholdBackground', out=ro)

    # no pseudo_label_rule in the config and no --rule
    case('no_rule', cams)
    return cases


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupted_job(cmd, out, attempts=3):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) once the
    first labels are out; then the same command again.

    The whole job takes a fraction of a second: when it finished before the
    signal arrived (exit 0, every label written) the interrupt came too late, which
    says nothing about the tool; the output is cleared and the job tried again."""
    for _ in range(attempts):
        shutil.rmtree(out, ignore_errors=True)
        # a test run started as a background job (`make test &`) inherits SIGINT
        # ignored, and so would the tool: give it the default, as a terminal does
        proc = subprocess.Popen(cmd, cwd=REPO, env=run_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True,
                                preexec_fn=_default_sigint)
        try:
            deadline = time.time() + 240
            while time.time() < deadline and proc.poll() is None:
                if osp.isdir(out) and _pngs(out):
                    break
                time.sleep(0.005)
            running = proc.poll() is None
            if running:
                os.killpg(proc.pid, signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if not (proc.returncode == 0 and len(_pngs(out)) == N_TRAIN):
            break
    first = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    # the state left by the interrupt, before re-running
    complete_error = None
    try:
        _assert_complete(out)
    except AssertionError as e:
        complete_error = str(e)
    return dict(first=first, running=running, pngs=_pngs(out),
                temp_files=_temp_files(out), complete_error=complete_error,
                second=_run(cmd))


@pytest.fixture(scope='module')
def runs(toy, cams, tmp_path_factory, python_exe):
    """Every tool run of the module. name -> result."""
    base = tmp_path_factory.mktemp('pl_runs')
    root = toy['root']
    jobs = {}

    def add(name, *extra, evaluate=False):
        out = str(base / name)
        js = str(base / f'{name}.json')
        args = list(extra) + (['--eval', '--json', js] if evaluate else [])
        cmd = _cmd(python_exe, root, cams, out, *args)
        jobs[name] = lambda: dict(p=_run(cmd), out=out, json=js)

    # the interrupted job first: it is the longest chain
    ki_out = str(base / 'ki')
    ki_cmd = _cmd(python_exe, root, cams, ki_out, '--rule', 'ConfidentRegions',
                  '--workers', '2')
    jobs['ki'] = lambda: dict(_interrupted_job(ki_cmd, ki_out), out=ki_out)
    add('w1', '--rule', 'ThresholdBackground', '--workers', '1',
        evaluate=True)
    add('confident', '--rule', 'ConfidentRegions', '--workers', '1',
        evaluate=True)
    add('saliency', '--rule', 'SaliencyBackground', '--workers', '2',
        evaluate=True)
    add('edam', '--rule', 'EDAMSaliency', '--workers', '2')
    add('psa', *PSA, '--workers', '1')

    errors = _error_cases(toy, cams, base, python_exe)
    for name, c in errors.items():
        if c['sub']:
            jobs['error_' + name] = lambda c=c: _run(c['cmd'],
                                                     env=c.get('env'))

    with ThreadPoolExecutor(PARALLEL) as ex:
        futs = {k: ex.submit(f) for k, f in jobs.items()}

        def resume():
            """On a copy of the w1 output, with 2 workers: re-run; delete 3
            and re-run; --overwrite."""
            w1 = futs['w1'].result()
            _ok(w1['p'])
            out = str(base / 'resume')
            shutil.copytree(w1['out'], out)
            cmd = _cmd(python_exe, root, cams, out, '--rule',
                       'ThresholdBackground', '--workers', '2')
            r = dict(out=out, again=_run(cmd), after_again=_bytes(out))
            for i in (toy['ids'][k] for k in (0, 7, 15)):
                os.remove(osp.join(out, i + '.png'))
            stamp = {n: os.stat(osp.join(out, n)).st_mtime_ns
                     for n in _pngs(out)}
            r['partial'] = _run(cmd)
            r['kept_untouched'] = all(
                os.stat(osp.join(out, n)).st_mtime_ns == t
                for n, t in stamp.items())
            r['after_partial'] = _bytes(out)
            r['overwrite'] = _run(cmd + ['--overwrite'])
            r['after_overwrite'] = _bytes(out)
            return r

        futs['resume'] = ex.submit(resume)
        # meanwhile, the other error cases in this process (one worker each)
        for name, c in errors.items():
            if not c['sub']:
                c['p'] = _run_inprocess(c['cmd'])
        res = {k: f.result() for k, f in futs.items()}
    for name, c in errors.items():
        if c['sub']:
            c['p'] = res.pop('error_' + name)
    if 'read_only' in errors:
        os.chmod(errors['read_only']['out'], 0o700)
    res['errors'] = errors
    for name in ('w1', 'confident', 'saliency', 'edam', 'psa'):
        _ok(res[name]['p'])
    return res


# ----------------------------------------------------------------- outputs
RULE_RUNS = ['w1', 'confident', 'saliency', 'edam', 'psa']


@pytest.mark.parametrize('name', RULE_RUNS)
def test_one_palette_png_per_id(name, runs, toy):
    r = runs[name]
    assert _counts(r['p']) == (f'wrote {N_TRAIN} pseudo labels, kept 0 '
                               'existing ones')
    assert _pngs(r['out']) == sorted(i + '.png' for i in toy['ids'])
    _assert_clean(r['out'])
    seen = set()
    for i in toy['ids']:
        mode, arr = _read(osp.join(r['out'], i + '.png'))
        assert mode == 'P'
        assert arr.shape == toy['gts'][i].shape
        allowed = {0, 255} | {int(c) + 1 for c in toy['labels'][i]}
        values = set(np.unique(arr).tolist())
        assert values <= allowed, (i, values, allowed)
        seen |= values
    # every rule labels some foreground
    assert seen - {0, 255}


def test_palette_is_voc(runs, toy):
    from mmwsss.utils.io import voc_palette
    with Image.open(osp.join(runs['w1']['out'], toy['ids'][0] + '.png')) as im:
        pal = np.asarray(im.getpalette()[:3 * 256], np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(pal[:21], voc_palette()[:21])


def test_rule_options_reach_the_rule(runs):
    # the CRF output (--rule-options crf=psa ...) is not the plain one
    assert 'crf' in runs['psa']['p'].stdout
    assert _bytes(runs['w1']['out']) != _bytes(runs['psa']['out'])


def test_workers_do_not_change_output(runs):
    """--workers 1 vs --workers 2: the plain rule (w1 vs the --overwrite run of
    the resume test, 2 workers) and a CRF rule (ConfidentRegions, w1 vs the
    interrupted-and-resumed 2-worker job)."""
    assert '1 worker(s)' in runs['w1']['p'].stdout
    assert '2 worker(s)' in runs['resume']['overwrite'].stdout
    assert runs['resume']['after_overwrite'] == _bytes(runs['w1']['out'])
    assert '1 worker(s)' in runs['confident']['p'].stdout
    _ok(runs['ki']['second'])
    assert '2 worker(s)' in runs['ki']['second'].stdout
    ref = _bytes(runs['confident']['out'])
    assert len(ref) == N_TRAIN
    assert _bytes(runs['ki']['out']) == ref


# ----------------------------------------------------------------- scores
def test_eval_threshold_background(runs):
    r = runs['w1']
    assert 'pseudo-label mIoU' in r['p'].stdout
    with open(r['json']) as f:
        s = json.load(f)
    assert s['num_images'] == N_TRAIN and s['written'] == N_TRAIN
    assert s['rule']['type'] == 'ThresholdBackground'
    assert s['mIoU'] > 80, s
    assert s['ignored_ratio'] == 0
    assert set(s['per_class']) == {'iou', 'precision', 'recall'}
    assert set(s['per_class']['iou']) >= {'background', 'disc', 'box'}
    assert s['per_class']['iou']['background'] > 80
    printed = float(r['p'].stdout.split('pseudo-label mIoU ')[1].split(',')[0])
    assert printed == pytest.approx(s['mIoU'], abs=0.01)


def test_eval_confident_regions_ignores_pixels(runs):
    with open(runs['confident']['json']) as f:
        s = json.load(f)
    assert s['rule']['type'] == 'ConfidentRegions'
    assert 0 < s['ignored_ratio'] < 50, s
    assert s['mIoU'] > 50, s


def test_eval_saliency_background(runs):
    with open(runs['saliency']['json']) as f:
        s = json.load(f)
    assert s['mIoU'] > 80, s
    assert s['ignored_ratio'] > 0


# ----------------------------------------------------------------- resume
def test_rerun_keeps_everything(runs):
    r = runs['resume']
    assert _counts(_ok(r['again'])) == \
        f'wrote 0 pseudo labels, kept {N_TRAIN} existing ones'
    assert r['after_again'] == _bytes(runs['w1']['out'])


def test_rerun_writes_only_missing(runs):
    r = runs['resume']
    assert _counts(_ok(r['partial'])) == \
        f'wrote 3 pseudo labels, kept {N_TRAIN - 3} existing ones'
    assert r['kept_untouched']
    assert r['after_partial'] == _bytes(runs['w1']['out'])


def test_overwrite_rewrites_all(runs):
    r = runs['resume']
    assert _counts(_ok(r['overwrite'])) == \
        f'wrote {N_TRAIN} pseudo labels, kept 0 existing ones'
    assert r['after_overwrite'] == _bytes(runs['w1']['out'])
    _assert_clean(r['out'])


# ----------------------------------------------------------------- errors
def test_error_missing_cam(runs):
    c = runs['errors']['missing_cam']
    msg = _error_line(c['p'])
    assert '2 of 16' in msg
    assert 'toy_train_00005' in msg and 'toy_train_00011' in msg
    assert c['cam_dir'] in msg
    assert '--split' in msg
    # checked before any work
    assert not _pngs(c['out'])


def test_error_missing_saliency(runs):
    c = runs['errors']['saliency']
    msg = _error_line(c['p'])
    assert '6 of 16' in msg
    assert 'toy_train_00010' in msg and 'toy_train_00009' not in msg
    assert 'partial_saliency' in msg
    assert '--saliency-dir' in msg
    assert not _pngs(c['out'])


def test_error_size_mismatch(runs):
    c = runs['errors']['size_crf']
    msg = _error_line(c['p'])
    assert BAD in msg
    assert '(64, 64)' in msg and '(128, 128)' in msg
    assert 'original image size' in msg
    # stopped by an error in a pool worker: whatever was written is complete
    _assert_complete(c['out'])
    assert BAD + '.png' not in _pngs(c['out'])
    _assert_no_temp_files(c['out'])


def test_error_size_mismatch_without_crf(runs):
    c = runs['errors']['size_plain']
    msg = _error_line(c['p'])
    assert BAD in msg and '(64, 64)' in msg and '(128, 128)' in msg


def test_error_class_beyond_num_classes(runs):
    c = runs['errors']['beyond']
    msg = _error_line(c['p'])
    assert BAD in msg
    assert 'class index 9' in msg and '8 foreground classes' in msg
    _assert_clean(c['out'])


def test_error_num_classes_mismatch_midway(runs, toy):
    c = runs['errors']['num_classes']
    msg = _error_line(c['p'])
    assert BAD in msg and 'num_classes=20' in msg
    assert '8 foreground classes' in msg
    # nothing half-written: the ids before the bad one are complete, there is
    # no temp file, the bad id and the ones after it are not there
    _assert_clean(c['out'])
    k = toy['ids'].index(BAD)
    assert _pngs(c['out']) == sorted(i + '.png' for i in toy['ids'][:k])


def test_no_temp_file_left_when_a_worker_fails(runs, toy):
    c = runs['errors']['leak']
    msg = _error_line(c['p'])
    assert toy['ids'][0] in msg and 'num_classes=20' in msg
    _assert_complete(c['out'])
    assert _temp_files(c['out']) == []


def test_error_output_not_creatable(runs):
    msg = _error_line(runs['errors']['out_under_file']['p'])
    assert 'a_file' in msg and 'output folder' in msg


@pytest.mark.skipif(IS_ROOT, reason='root can write to a 0o500 folder')
def test_error_output_not_writable(runs):
    c = runs['errors']['read_only']
    msg = _error_line(c['p'])
    assert c['out'] in msg and '--out' in msg
    assert not os.listdir(c['out'])


def test_error_no_rule(runs):
    msg = _error_line(runs['errors']['no_rule']['p'])
    assert 'pseudo_label_rule' in msg and '--rule' in msg
    assert 'cam_r18_toy.py' in msg


# ----------------------------------------------------------------- Ctrl-C
def test_keyboard_interrupt_then_resume(runs):
    """Ctrl-C in the middle of a 2-worker CRF job: exit != 0 with a message,
    no temp file, every PNG complete; the same command then writes the rest,
    and the result equals an uninterrupted run."""
    r = runs['ki']
    assert r['running'], 'the job ended before it could be interrupted'
    first = r['first']
    assert first.returncode != 0
    assert 'interrupted' in first.stderr, first.stderr[-3000:]
    assert r['complete_error'] is None, r['complete_error']
    done = len(r['pngs'])
    assert 0 < done < N_TRAIN, r['pngs']
    second = _ok(r['second'])
    assert _counts(second) == (f'wrote {N_TRAIN - done} pseudo labels, kept '
                               f'{done} existing ones')
    _assert_complete(r['out'])
    assert _bytes(r['out']) == _bytes(runs['confident']['out'])
    # a worker busy in C code (CRF, PNG encoder) sees its KeyboardInterrupt
    # late; the main process may terminate it first (see the test above)
    assert _temp_files(r['out']) == r['temp_files'] == []
