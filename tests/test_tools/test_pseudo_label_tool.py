"""tools/make_pseudo_labels.py on the toy set: outputs, determinism across workers,
resumption, scores, every rule, one-line errors and no half-written files.

Every tool call is a subprocess (about 4 s of imports each); the independent calls of a
fixture run concurrently to keep the module near 40 s on 2 CPU cores.
"""
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
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


def _run(args, timeout=300):
    return subprocess.run(args, cwd=REPO, env=run_env(), capture_output=True,
                          text=True, timeout=timeout)


def _ok(p):
    assert p.returncode == 0, p.stdout[-3000:] + '\n' + p.stderr[-5000:]
    return p


def _concurrently(jobs):
    """Run the callables of ``jobs`` (name -> callable) in threads; return the
    results by name (the callables wait on subprocesses, so threads suffice)."""
    with ThreadPoolExecutor(PARALLEL) as ex:
        futs = {k: ex.submit(f) for k, f in jobs.items()}
        return {k: f.result() for k, f in futs.items()}


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


def _assert_clean(folder, size=(128, 128)):
    """No temporary files; every PNG is complete and readable."""
    names = os.listdir(folder)
    assert not [n for n in names if n.startswith('.')], names
    for name in names:
        assert name.endswith('.png'), name
        path = osp.join(folder, name)
        with Image.open(path) as img:
            img.verify()  # checks the PNG chunks / CRCs
        with Image.open(path) as img:
            assert img.mode == 'P'
            arr = np.asarray(img)
        assert arr.shape == size


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


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def toy(toy_root):
    """ids, image-level labels and GT of the toy train split."""
    from mmwsss.utils.io import read_label_png, read_split_ids
    ids = read_split_ids(
        osp.join(toy_root, 'ImageSets', 'Segmentation', 'train.txt'))
    cls = np.load(osp.join(toy_root, 'cls_labels.npy'),
                  allow_pickle=True).item()
    assert len(ids) == N_TRAIN
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


@pytest.fixture(scope='module')
def runs(toy, cams, tmp_path_factory, python_exe):
    """The successful runs, concurrently. name -> dict(p, out, json)."""
    base = tmp_path_factory.mktemp('pl_runs')
    root = toy['root']

    def job(name, *extra, evaluate=False):
        out = str(base / name)
        js = str(base / f'{name}.json')
        args = list(extra)
        if evaluate:
            args += ['--eval', '--json', js]
        return lambda: dict(p=_run(_cmd(python_exe, root, cams, out, *args)),
                            out=out, json=js)

    jobs = dict(
        w1=job('w1', '--rule', 'ThresholdBackground', '--workers', '1',
               evaluate=True),
        w2=job('w2', '--rule', 'ThresholdBackground', '--workers', '2'),
        confident=job('confident', '--rule', 'ConfidentRegions', '--workers',
                      '2', evaluate=True),
        saliency=job('saliency', '--rule', 'SaliencyBackground', '--workers',
                     '2', evaluate=True),
        edam=job('edam', '--rule', 'EDAMSaliency', '--workers', '2'),
        psa_w1=job('psa_w1', *PSA, '--workers', '1'),
        psa_w2=job('psa_w2', *PSA, '--workers', '2'),
    )
    res = _concurrently(jobs)
    for name, r in res.items():
        _ok(r['p'])
    return res


RULE_RUNS = ['w1', 'confident', 'saliency', 'edam', 'psa_w1']


# ----------------------------------------------------------------- outputs
@pytest.mark.parametrize('name', RULE_RUNS)
def test_one_palette_png_per_id(name, runs, toy):
    r = runs[name]
    assert _counts(r['p']) == f'wrote {N_TRAIN} pseudo labels, kept 0 ' \
        'existing ones'
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
    # some foreground is labelled by every rule
    assert seen - {0, 255}


def test_palette_is_voc(runs, toy):
    from mmwsss.utils.io import voc_palette
    with Image.open(osp.join(runs['w1']['out'], toy['ids'][0] + '.png')) as im:
        pal = np.asarray(im.getpalette()[:3 * 256], np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(pal[:21], voc_palette()[:21])


@pytest.mark.parametrize('pair', [('w1', 'w2'), ('psa_w1', 'psa_w2')])
def test_workers_do_not_change_output(pair, runs):
    a, b = (_bytes(runs[n]['out']) for n in pair)
    assert len(a) == N_TRAIN and a.keys() == b.keys()
    assert a == b
    assert '1 worker(s)' in runs[pair[0]]['p'].stdout
    assert '2 worker(s)' in runs[pair[1]]['p'].stdout


def test_crf_rules_differ_from_plain(runs):
    # the rule options reach the rule: the CRF output is not the plain one
    assert _bytes(runs['w1']['out']) != _bytes(runs['psa_w1']['out'])


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
    assert s['per_class']['iou']['background'] > 80
    assert set(s['per_class']['iou']) >= {'background', 'disc', 'box'}
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
@pytest.fixture(scope='module')
def resumed(runs, toy, cams, tmp_path_factory, python_exe):
    """On a copy of the w1 output: re-run, delete 3 and re-run, --overwrite."""
    out = str(tmp_path_factory.mktemp('pl_resume') / 'out')
    shutil.copytree(runs['w1']['out'], out)
    cmd = _cmd(python_exe, toy['root'], cams, out, '--rule',
               'ThresholdBackground', '--workers', '2')
    again = _ok(_run(cmd))
    after_again = _bytes(out)
    gone = [toy['ids'][k] for k in (0, 7, 15)]
    for i in gone:
        os.remove(osp.join(out, i + '.png'))
    stamp = {n: os.stat(osp.join(out, n)).st_mtime_ns for n in _pngs(out)}
    partial = _ok(_run(cmd))
    kept_untouched = all(
        os.stat(osp.join(out, n)).st_mtime_ns == t for n, t in stamp.items())
    after_partial = _bytes(out)
    over = _ok(_run(cmd + ['--overwrite']))
    return dict(again=again, after_again=after_again, partial=partial,
                kept_untouched=kept_untouched, after_partial=after_partial,
                overwrite=over, after_overwrite=_bytes(out), out=out)


def test_rerun_keeps_everything(resumed, runs):
    assert _counts(resumed['again']) == \
        f'wrote 0 pseudo labels, kept {N_TRAIN} existing ones'
    assert resumed['after_again'] == _bytes(runs['w1']['out'])


def test_rerun_writes_only_missing(resumed, runs):
    assert _counts(resumed['partial']) == \
        f'wrote 3 pseudo labels, kept {N_TRAIN - 3} existing ones'
    assert resumed['kept_untouched']
    assert resumed['after_partial'] == _bytes(runs['w1']['out'])


def test_overwrite_rewrites_all(resumed, runs):
    assert _counts(resumed['overwrite']) == \
        f'wrote {N_TRAIN} pseudo labels, kept 0 existing ones'
    assert resumed['after_overwrite'] == _bytes(runs['w1']['out'])
    _assert_clean(resumed['out'])


# ----------------------------------------------------------------- errors
BAD = 'toy_train_00008'  # an id in the middle of the split


@pytest.fixture(scope='module')
def errors(toy, cams, tmp_path_factory, python_exe):
    """Every error case, concurrently. name -> dict(p, out, ...)."""
    from mmwsss.utils.cam_io import cam_path, save_cam
    base = tmp_path_factory.mktemp('pl_errors')
    root = toy['root']

    def cam_copy(name):
        d = str(base / f'{name}_cams')
        shutil.copytree(cams, d)
        return d

    cases = {}

    def case(name, cam_dir, *extra, out=None):
        out = out or str(base / f'{name}_out')
        cases[name] = dict(cmd=_cmd(python_exe, root, cam_dir, out, *extra),
                           out=out, cam_dir=cam_dir)

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

    # one CAM at 64x64 (the images are 128x128), in the middle of the split
    d = cam_copy('small')
    save_cam(cam_path(d, BAD),
             _gt_cams(toy['gts'][BAD], toy['labels'][BAD], 0, size=(64, 64)),
             toy['labels'][BAD], num_classes=NUM_CLASSES)
    case('size_crf', d, *PSA, '--workers', '2')
    case('size_plain', d, '--rule', 'ThresholdBackground')

    # a class index (9) beyond num_classes=8 (save_cam would refuse it)
    d = cam_copy('beyond')
    cam = _gt_cams(toy['gts'][BAD], toy['labels'][BAD], 0)
    np.savez(cam_path(d, BAD), cams=np.concatenate([cam, cam[:1]]
                                                   ).astype(np.float16),
             labels=np.concatenate([toy['labels'][BAD], [9]]).astype(np.int16),
             num_classes=np.int32(NUM_CLASSES), version=np.int32(1))
    case('beyond', d, '--rule', 'ThresholdBackground')

    # CAMs of another dataset (num_classes=20) for one id, 1 worker: the ids
    # before it are written, then the job stops
    d = cam_copy('num_classes')
    save_cam(cam_path(d, BAD), cam, toy['labels'][BAD], num_classes=20)
    case('num_classes', d, '--rule', 'ThresholdBackground', '--workers', '1')

    # output folders that cannot be written
    blocker = str(base / 'a_file')
    with open(blocker, 'w') as f:
        f.write('not a folder')
    case('out_under_file', cams, '--rule', 'ThresholdBackground',
         out=osp.join(blocker, 'labels'))
    if os.geteuid() != 0:
        ro = str(base / 'read_only')
        os.makedirs(ro)
        os.chmod(ro, 0o500)
        case('read_only', cams, '--rule', 'ThresholdBackground', out=ro)

    # no pseudo_label_rule in the config and no --rule
    case('no_rule', cams)

    res = _concurrently(
        {k: (lambda c=c: _run(c['cmd'])) for k, c in cases.items()})
    for k, c in cases.items():
        c['p'] = res[k]
    if 'read_only' in cases:
        os.chmod(cases['read_only']['out'], 0o700)
    return cases


def test_error_missing_cam(errors):
    msg = _error_line(errors['missing_cam']['p'])
    assert '2 of 16' in msg
    assert 'toy_train_00005' in msg and 'toy_train_00011' in msg
    assert errors['missing_cam']['cam_dir'] in msg
    assert '--split' in msg or 'export' in msg.lower()
    # checked before any work
    assert not osp.isdir(errors['missing_cam']['out']) or not _pngs(
        errors['missing_cam']['out'])


def test_error_missing_saliency(errors):
    msg = _error_line(errors['saliency']['p'])
    assert '6 of 16' in msg
    assert 'toy_train_00010' in msg
    assert 'partial_saliency' in msg
    assert '--saliency-dir' in msg
    assert not _pngs(errors['saliency']['out'])


def test_error_size_mismatch(errors):
    c = errors['size_crf']
    msg = _error_line(c['p'])
    assert BAD in msg
    assert '(64, 64)' in msg and '(128, 128)' in msg
    assert 'original image size' in msg
    # stopped by a worker error: whatever was written is complete
    _assert_clean(c['out'])
    assert BAD + '.png' not in _pngs(c['out'])


@pytest.mark.xfail(
    strict=True,
    reason='process_task only checks the CAM size against the image when the '
    'rule needs the image (CRF) or the saliency: ThresholdBackground without '
    'CRF writes a 64x64 label for a 128x128 image and exits 0')
def test_error_size_mismatch_without_crf(errors):
    c = errors['size_plain']
    msg = _error_line(c['p'])
    assert BAD in msg and '(64, 64)' in msg and '(128, 128)' in msg


def test_error_class_beyond_num_classes(errors):
    msg = _error_line(errors['beyond']['p'])
    assert BAD in msg
    assert '9' in msg and '8' in msg
    _assert_clean(errors['beyond']['out'])


def test_error_num_classes_mismatch_midway(errors, toy):
    c = errors['num_classes']
    msg = _error_line(c['p'])
    assert BAD in msg and 'num_classes=20' in msg and '8' in msg
    # nothing half-written: the ids before the bad one are complete, no temp
    # files, the bad id and the ones after it are not there
    _assert_clean(c['out'])
    k = toy['ids'].index(BAD)
    assert _pngs(c['out']) == sorted(i + '.png' for i in toy['ids'][:k])


def test_error_output_not_creatable(errors):
    msg = _error_line(errors['out_under_file']['p'])
    assert 'a_file' in msg and 'output folder' in msg


@pytest.mark.skipif(os.geteuid() == 0,
                    reason='root can write to a 0o500 folder')
def test_error_output_not_writable(errors):
    c = errors['read_only']
    msg = _error_line(c['p'])
    assert c['out'] in msg and '--out' in msg
    assert not os.listdir(c['out'])


def test_error_no_rule(errors):
    msg = _error_line(errors['no_rule']['p'])
    assert 'pseudo_label_rule' in msg and '--rule' in msg
    assert 'cam_r18_toy.py' in msg


# ----------------------------------------------------------------- Ctrl-C
def test_keyboard_interrupt_then_resume(runs, toy, cams, tmp_path, python_exe):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) in the middle
    of a CRF job with 2 workers: no temp file, every PNG complete; the same
    command then finishes the rest, identical to an uninterrupted run."""
    out = str(tmp_path / 'ki')
    cmd = _cmd(python_exe, toy['root'], cams, out, '--rule',
               'ConfidentRegions', '--workers', '2')
    proc = subprocess.Popen(cmd, cwd=REPO, env=run_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        # interrupt once the first labels are out (imports take ~4 s)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if osp.isdir(out) and _pngs(out):
                break
            time.sleep(0.02)
        assert proc.poll() is None, 'the job ended before it was interrupted'
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert 'interrupted' in stderr, stderr[-3000:]
    _assert_clean(out)
    done = len(_pngs(out))
    assert 0 < done < N_TRAIN, done
    p = _ok(_run(cmd))
    assert _counts(p) == (f'wrote {N_TRAIN - done} pseudo labels, kept {done} '
                          'existing ones')
    _assert_clean(out)
    assert _bytes(out) == _bytes(runs['confident']['out'])
