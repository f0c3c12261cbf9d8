"""tools/analysis/compare_methods.py and its library (mmwsss/evaluation/compare.py):
the method declarations of the toy configs, planning (requirements first, added when
not listed), the toy-data check, resumable runs (the tools replaced by fakes), the
step time from MMEngine's scalar log, the leaderboard, the grid, and one ``--fast``
run of two configs end to end (run twice: the second skips both runs)."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from mmwsss.evaluation import compare
from mmwsss.utils.cli import ToolError
from tests.conftest import REPO, no_network_env

TOY = osp.realpath(osp.join(REPO, 'configs', 'toy'))
TOOL = osp.join(REPO, 'tools', 'analysis', 'compare_methods.py')


def _spec(name):
    return compare.load_method(osp.join(TOY, name))


# ------------------------------------------------------------------ configs
def test_toy_method_declarations():
    specs = {osp.basename(s.config): s for s in compare.discover_methods(TOY)}
    assert {k: v.name for k, v in specs.items()} == {
        'cam_r18_toy.py': 'CAM', 'oaa_r18_toy.py': 'OAA',
        'oaa_drop_r18_toy.py': 'OAA++', 'iam_r18_toy.py': 'OAA+',
        'iam_drop_r18_toy.py': 'OAA+++', 'gain_r18_toy.py': 'GAIN',
        'gain_ext-p_r18_toy.py': 'GAIN_ext-p', 'edam_r18_toy.py': 'EDAM',
        'vwl_l_r18_toy.py': 'VWL-L', 'vwl_m_r18_toy.py': 'VWL-M'}
    assert specs['cam_r18_toy.py'].seeds == 'cams'
    # EDAM: its DA masks exported as CAMs, its own rule, no required run
    assert specs['edam_r18_toy.py'].seeds == 'cams'
    assert specs['edam_r18_toy.py'].requires == {}
    assert specs['edam_r18_toy.py'].pseudo_label_rule['type'] == 'EDAMSaliency'
    # VWL: the CAMs of the trained classifier, no required run, VWL's rule
    for name in ('vwl_l_r18_toy.py', 'vwl_m_r18_toy.py'):
        assert specs[name].seeds == 'cams'
        assert specs[name].requires == {}
        assert specs[name].pseudo_label_rule['type'] == 'ThresholdBackground'
    for name in ('gain_r18_toy.py', 'gain_ext-p_r18_toy.py'):
        assert specs[name].seeds == 'cams'
        assert specs[name].pseudo_label_rule['type'] == 'GAINCues'
    assert specs['gain_r18_toy.py'].requires == {}
    # GAIN_ext-p fine-tunes the CAM classifier of the same seed
    assert specs['gain_ext-p_r18_toy.py'].requires == {
        'load_from': (osp.join(TOY, 'cam_r18_toy.py'), 'last_checkpoint')}
    assert specs['oaa_drop_r18_toy.py'].seeds == 'oaa_maps'
    assert specs['iam_r18_toy.py'].requires == {
        'attention_targets': (osp.join(TOY, 'oaa_r18_toy.py'), 'oaa_maps')}
    assert specs['iam_drop_r18_toy.py'].requires == {
        'attention_targets': (osp.join(TOY, 'oaa_drop_r18_toy.py'), 'oaa_maps')}
    # the rule: the OAA configs have one, CAM and the IAM ones fall back
    assert specs['oaa_r18_toy.py'].pseudo_label_rule['type'] == 'SaliencyBackground'
    assert specs['cam_r18_toy.py'].pseudo_label_rule is None
    # not methods (the ablation inherits OAA's and sets None)
    for name in ('oaa_ablation_r18_toy.py', 'supervised_toy.py',
                 'largefov_r18_toy_gt.py', 'largefov_r18_toy_pseudo.py'):
        assert compare.load_method(osp.join(TOY, name)) is None


@pytest.mark.parametrize('method, msg', [
    ("dict(name='X')", 'method.seeds=None'),
    ("dict(name='', seeds='cams')", 'method.name'),
    ("dict(name='X', seeds='../up')", 'not an absolute or parent path'),
    ("dict(name='X', seeds='cams', extra=1)", "unknown key(s) ['extra']"),
    ("dict(name='X', seeds='cams', requires=dict(attention_targets='a.py'))",
     'must be a pair (config, folder)'),
    ("dict(name='X', seeds='cams', requires=dict(attention_targets=('no.py', 'm')))",
     "the config"),
    ("dict(name='X', seeds='cams', requires=dict(nokey=('a.py', 'm')))",
     "'nokey' is not a key of the config"),
    ("'CAM'", 'must be a dict'),
])
def test_bad_method_declarations(tmp_path, method, msg):
    (tmp_path / 'a.py').write_text('attention_targets = "x"\n')
    cfg = tmp_path / 'b.py'
    cfg.write_text(f'attention_targets = "x"\nmethod = {method}\n')
    with pytest.raises(ToolError) as e:
        compare.load_method(str(cfg))
    assert msg in str(e.value) and str(cfg) in str(e.value)


# ----------------------------------------------------------------- planning
def test_plan_adds_requirements_and_baseline(tmp_path):
    cache = {}
    iam = _spec('iam_r18_toy.py')
    base = compare.resolve_baseline('CAM', [iam], TOY, cache)
    assert osp.basename(base.config) == 'cam_r18_toy.py'
    order, added = compare.plan_methods([iam], base, cache)
    assert [m.name for m in order] == ['CAM', 'OAA', 'OAA+']
    assert [(m.name, why.split(' (')[0]) for m, why in added] == [
        ('CAM', 'the baseline of the relative step time'),
        ('OAA', 'required by OAA+')]
    assert 'method.requires.attention_targets' in added[1][1]
    # listed in the "wrong" order: the requirement still runs first, nothing added
    oaa = _spec('oaa_r18_toy.py')
    order, added = compare.plan_methods([iam, oaa], iam)
    assert [m.name for m in order] == ['OAA', 'OAA+'] and added == []
    # the jobs: seed by seed, each IAM run needs the OAA run of its seed
    jobs = compare.make_jobs(order, [0, 1], str(tmp_path))
    assert [j.label for j in jobs] == ['oaa_r18_toy/seed0', 'iam_r18_toy/seed0',
                                       'oaa_r18_toy/seed1', 'iam_r18_toy/seed1']
    assert jobs[3].needs == {'attention_targets': (
        ('oaa_r18_toy', 1),
        osp.join(str(tmp_path), 'runs', 'oaa_r18_toy', 'seed1', 'oaa_maps'))}


def test_plan_refuses_a_cycle(tmp_path):
    for a, b in (('a', 'b'), ('b', 'a')):
        (tmp_path / f'{a}.py').write_text(
            f"targets = 'x'\nmethod = dict(name='{a}', seeds='cams', "
            f"requires=dict(targets=('{b}.py', 'cams')))\n")
    with pytest.raises(ToolError, match=r'cycle: a.py -> b.py -> a.py'):
        compare.plan_methods([compare.load_method(str(tmp_path / 'a.py'))])


def test_execute_runs_requirements_first(tmp_path, monkeypatch):
    """Two at a time: an IAM run starts only when the OAA run of its seed ended."""
    order, _ = compare.plan_methods([_spec('iam_r18_toy.py'), _spec('cam_r18_toy.py')])
    jobs = compare.make_jobs(order, [0, 1], str(tmp_path))
    events = []

    def fake_run_job(job, ctx):
        events.append(('start', job.key))
        time.sleep(0.05 if job.spec.stem == 'oaa_r18_toy' else 0.01)
        events.append(('end', job.key))
        return dict(run_dir=job.run_dir)

    monkeypatch.setattr(compare, 'run_job', fake_run_job)
    ctx = compare.RunContext(str(tmp_path), str(tmp_path), compare.__file__,
                             log=lambda msg: None)
    done = compare.execute_jobs(jobs, ctx, workers=2)
    assert set(done) == {j.key for j in jobs}
    for seed in (0, 1):
        assert events.index(('end', ('oaa_r18_toy', seed))) < events.index(
            ('start', ('iam_r18_toy', seed)))


# --------------------------------------------------------------------- data
def test_toy_meta_mismatch_is_refused(tmp_path):
    data, work = tmp_path / 'toy', tmp_path / 'work'
    data.mkdir()
    (data / 'toy_meta.json').write_text(json.dumps(dict(seed=0, num_train=24)))
    root, meta = compare.prepare_data(str(data), str(work), log=lambda m: None)
    assert root == str(data) and meta == dict(seed=0, num_train=24)
    assert json.loads((work / 'toy_meta.json').read_text()) == meta
    (work / 'runs' / 'cam_r18_toy' / 'seed0').mkdir(parents=True)
    # other data: refused, the runs stay
    (data / 'toy_meta.json').write_text(json.dumps(dict(seed=1, num_train=24)))
    with pytest.raises(ToolError) as e:
        compare.prepare_data(str(data), str(work), log=lambda m: None)
    msg = str(e.value)
    assert 'seed: 0 -> 1' in msg and '--work-dir' in msg and '--fresh' in msg
    assert (work / 'runs' / 'cam_r18_toy').is_dir()
    # --fresh: the runs are deleted and the new data recorded
    compare.prepare_data(str(data), str(work), fresh=True, log=lambda m: None)
    assert not (work / 'runs').exists()
    assert json.loads((work / 'toy_meta.json').read_text())['seed'] == 1
    # runs without the record of their data: refused too
    (work / 'toy_meta.json').unlink()
    (work / 'runs' / 'x').mkdir(parents=True)
    with pytest.raises(ToolError, match='toy_meta.json is missing'):
        compare.prepare_data(str(data), str(work), log=lambda m: None)


def test_toy_data_made_before_the_strong_subsets(tmp_path):
    """Data and runs from before the GAIN_ext lists (toy_meta.json without
    ``strong_subsets``): the lists are added to the data and the runs are kept
    (the images are the same); other data is still refused."""
    from mmwsss.datasets import make_toy_dataset
    data, work = tmp_path / 'toy', tmp_path / 'work'
    meta = make_toy_dataset(str(data), seed=0, num_train=6, num_val=1)
    shutil.rmtree(data / 'ImageSets' / 'GAIN')
    old = {k: v for k, v in meta.items() if k != 'strong_subsets'}
    for folder in (data, work):
        folder.mkdir(exist_ok=True)
        (folder / 'toy_meta.json').write_text(json.dumps(old))
    (work / 'runs' / 'cam_r18_toy' / 'seed0').mkdir(parents=True)
    logged = []
    _, got = compare.prepare_data(str(data), str(work), log=logged.append)
    assert got == meta and json.loads((work / 'toy_meta.json').read_text()) == meta
    assert (data / 'ImageSets' / 'GAIN' / 'pixel_10pct.txt').is_file()
    assert (work / 'runs' / 'cam_r18_toy' / 'seed0').is_dir()
    assert any('strong-subset lists' in m for m in logged), logged
    (work / 'toy_meta.json').write_text(json.dumps(dict(old, seed=1)))
    with pytest.raises(ToolError, match='seed: 1 -> 0'):
        compare.prepare_data(str(data), str(work), log=lambda m: None)


# ------------------------------------------------------- runs (fake tools)
def _scalars(run_dir, stamp, times, val=True):
    folder = osp.join(run_dir, stamp, 'vis_data')
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, 'scalars.json'), 'w') as f:
        for i, t in enumerate(times, 1):
            f.write(json.dumps(dict(lr=0.1, loss=0.5, time=t, data_time=0.01,
                                    epoch=1, iter=i, step=i)) + '\n')
        if val:  # a validation entry: no `iter`, a `time` of its own
            f.write(json.dumps({'seed/mIoU': 5.0, 'time': 9.0, 'step': 2}) + '\n')


def test_step_times_from_scalars(tmp_path):
    run = str(tmp_path)
    _scalars(run, '20260101_000000', [3.0, 0.2, 0.4])        # first process
    _scalars(run, '20260101_000100', [2.0, 0.3], val=False)  # resumed
    os.makedirs(osp.join(run, 'export', '20260101_000200', 'vis_data'))
    assert compare.read_step_times(run) == [0.2, 0.4, 0.3]
    assert compare.read_step_times(str(tmp_path / 'none')) == []


class FakeTools:
    """``run_command`` replaced: writes what each tool would write."""

    def __init__(self, fail=None):
        self.calls, self.fail = [], fail

    def __call__(self, cmd, log_path, env):
        tool = osp.basename(cmd[1])
        self.calls.append((tool, list(cmd)))
        with open(log_path, 'a') as f:
            f.write(f'$ {tool}\nsome output of {tool}\n')
        if tool == self.fail:
            return 1

        def arg(flag):
            return cmd[cmd.index(flag) + 1]
        if tool == 'train.py':
            run = arg('--work-dir')
            open(osp.join(run, 'epoch_2.pth'), 'w').close()
            with open(osp.join(run, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(run, 'epoch_2.pth'))
            _scalars(run, '20260101_000000', [1.0, 0.2, 0.4])
        elif tool == 'export_cams.py':
            os.makedirs(arg('--out'), exist_ok=True)
            open(osp.join(arg('--out'), 'a.npz'), 'w').close()
        elif tool == 'eval_seeds.py':
            with open(arg('--out'), 'w') as f:
                json.dump(dict(mIoU=40.0, best_threshold=0.35, attention_quality=dict(
                    recall=50.0, noise=20.0)), f)
        elif tool == 'make_pseudo_labels.py':
            rule = dict(type=arg('--rule'), threshold=float(
                arg('--rule-options').split('=')[1])) if '--rule' in cmd else {}
            with open(arg('--json'), 'w') as f:
                json.dump(dict(mIoU=45.0, ignored_ratio=0.0, rule=rule), f)
        return 0

    @property
    def tools(self):
        return [t for t, _ in self.calls]


def _job_ctx(tmp_path, name='cam_r18_toy.py', train_options=()):
    spec = _spec(name)
    job = compare.make_jobs([spec], [0], str(tmp_path / 'work'))[0]
    ctx = compare.RunContext(str(tmp_path / 'work'), str(tmp_path / 'toy'),
                             osp.join(REPO, 'tools'), list(train_options),
                             log=lambda msg: None)
    return job, ctx


def test_run_is_resumable(tmp_path, monkeypatch):
    fake = FakeTools()
    monkeypatch.setattr(compare, 'run_command', fake)
    job, ctx = _job_ctx(tmp_path, train_options=['train_cfg.max_epochs=2'])
    result = compare.run_job(job, ctx)
    assert fake.tools == ['train.py', 'export_cams.py', 'eval_seeds.py',
                          'make_pseudo_labels.py']
    train = fake.calls[0][1]
    assert train[train.index('--work-dir') + 1] == job.run_dir and '--resume' in train
    assert 'randomness.seed=0' in train and train[-1] == 'train_cfg.max_epochs=2'
    assert f'train_dataloader.dataset.data_root={tmp_path}/toy' in train
    # no pseudo_label_rule in cam_r18_toy.py: the seed rule at the best threshold
    pseudo = fake.calls[3][1]
    assert pseudo[pseudo.index('--rule') + 1:pseudo.index('--rule') + 4] == [
        'ThresholdBackground', '--rule-options', 'threshold=0.35']
    assert result['pseudo_label_rule'] == dict(type='ThresholdBackground',
                                               threshold=0.35)
    assert result['pseudo_label_rule_source'] == 'fallback'
    assert (result['seed_miou'], result['attn_recall'], result['pseudo_miou']) == (
        40.0, 50.0, 45.0)
    assert result['step_time_s'] == pytest.approx(0.3)
    assert set(result['step_seconds']) == {'train', 'seeds', 'eval', 'pseudo'}
    assert result == json.load(open(osp.join(job.run_dir, 'result.json')))

    # a finished run is skipped: no tool runs
    fake.calls.clear()
    assert compare.run_job(job, ctx) == result and fake.calls == []
    # a run interrupted before its pseudo labels: only that step runs again
    os.remove(osp.join(job.run_dir, 'result.json'))
    steps = json.load(open(osp.join(job.run_dir, 'steps.json')))
    del steps['pseudo']
    json.dump(steps, open(osp.join(job.run_dir, 'steps.json'), 'w'))
    compare.run_job(job, ctx)
    assert fake.tools == ['make_pseudo_labels.py']
    # other training options for a run that has begun: refused
    ctx.train_options = ['train_cfg.max_epochs=3']
    with pytest.raises(ToolError, match='made with other settings'):
        compare.run_job(job, ctx)


def test_checkpoint_requirement_passes_the_last_checkpoint(tmp_path, monkeypatch):
    """GAIN_ext-p's requires=load_from (cam_r18_toy.py, 'last_checkpoint'): the CAM
    run of the same seed goes first and its training passes the checkpoint that run
    ended with (the file its last_checkpoint names) to training and export; before
    that run has trained, the run is refused with the reason."""
    fake = FakeTools()
    monkeypatch.setattr(compare, 'run_command', fake)
    order, _ = compare.plan_methods([_spec('gain_ext-p_r18_toy.py')])
    assert [m.name for m in order] == ['CAM', 'GAIN_ext-p']
    work = str(tmp_path / 'work')
    cam_job, ext_job = compare.make_jobs(order, [1], work)
    ctx = compare.RunContext(work, str(tmp_path / 'toy'), osp.join(REPO, 'tools'),
                             log=lambda msg: None)
    with pytest.raises(ToolError, match='names no checkpoint file: the run '
                       'cam_r18_toy/seed1 did not finish its training'):
        compare.run_job(ext_job, ctx)
    assert fake.calls == []
    compare.run_job(cam_job, ctx)
    fake.calls.clear()
    compare.run_job(ext_job, ctx)
    ckpt = osp.join(cam_job.run_dir, 'epoch_2.pth')
    train, export = fake.calls[0][1], fake.calls[1][1]
    assert f'load_from={ckpt}' in train and 'randomness.seed=1' in train
    assert f'load_from={ckpt}' in export
    assert compare.required_path(osp.join(cam_job.run_dir, 'cams')) == osp.join(
        cam_job.run_dir, 'cams')


def test_failed_step_names_command_and_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compare, 'run_command', FakeTools(fail='eval_seeds.py'))
    job, ctx = _job_ctx(tmp_path, 'oaa_r18_toy.py')
    os.makedirs(osp.join(job.run_dir, 'oaa_maps'))
    open(osp.join(job.run_dir, 'oaa_maps', 'a.npz'), 'w').close()
    with pytest.raises(compare.RunFailed) as e:
        compare.execute_jobs([job], ctx)
    assert 'oaa_r18_toy/seed0 failed at its eval step (exit status 1' in str(e.value)
    err = capsys.readouterr().err
    assert 'some output of eval_seeds.py' in err
    assert 'failed command: ' in err and 'eval_seeds.py' in err
    assert not osp.exists(osp.join(job.run_dir, 'result.json'))
    # the training step is kept
    assert 'train' in json.load(open(osp.join(job.run_dir, 'steps.json')))


# -------------------------------------------------------------- leaderboard
def test_aggregate():
    assert compare.aggregate([1.0, 2.0, 4.0]) == pytest.approx(
        (7 / 3, float(np.std([1, 2, 4], ddof=1))))
    assert compare.aggregate([3.0]) == (3.0, None)
    assert compare.aggregate([None, 3.0, float('nan')]) == (3.0, None)
    assert compare.aggregate([]) == (None, None)


def _result(spec, seed, miou, step):
    return dict(method=spec.name, config=spec.config, seed=seed, run_dir='r',
                seed_dir='s', seed_miou=miou, best_threshold=0.3, attn_recall=50.0,
                attn_noise=None, pseudo_miou=None if miou is None else miou + 5,
                step_time_s=step,
                wall_time_s=10.0, pseudo_label_rule=dict(type='ThresholdBackground',
                                                         threshold=0.3),
                pseudo_label_rule_source='fallback', warnings=[])


def test_leaderboard():
    cam, oaa = _spec('cam_r18_toy.py'), _spec('oaa_r18_toy.py')
    results = {('cam_r18_toy', 0): _result(cam, 0, 40.0, 0.2),
               ('cam_r18_toy', 1): _result(cam, 1, 42.0, 0.4),
               ('oaa_r18_toy', 0): _result(oaa, 0, 50.0, 0.3),
               ('oaa_r18_toy', 1): _result(oaa, 1, None, 0.4)}
    board = compare.build_leaderboard([cam, oaa], [0, 1], results, cam,
                                      dict(seed=0), 'python x', '/d')
    json.dumps(board)  # JSON-ready
    c, o = board['methods']
    assert (c['name'], c['seeds'], c['mean']['seed_miou']) == ('CAM', [0, 1], 41.0)
    assert c['std']['seed_miou'] == pytest.approx(np.sqrt(2))
    assert c['mean']['step_time_rel'] == 1.0 and c['std']['step_time_rel'] == 0.0
    # relative to CAM of the same seed: 0.3 / 0.2 and 0.4 / 0.4
    assert [p['step_time_rel'] for p in o['per_seed']] == pytest.approx([1.5, 1.0])
    assert o['mean']['seed_miou'] == 50.0 and o['std']['seed_miou'] is None
    assert o['mean']['attn_noise'] is None
    md = compare.format_leaderboard_md(board)
    assert ('| Method | Config | Seeds | Seed mIoU (mean ± std) | Attn recall | '
            'Attn noise | Pseudo-label mIoU | Step time × CAM | Wall time |') in md
    assert ('| CAM | `configs/toy/cam_r18_toy.py` | 0, 1 | 41.00 ± 1.41 | 50.00 ± '
            '0.00 | n/a | 46.00 ± 1.41 | 1.00 ± 0.00 | 10 ± 0 s |') in md
    assert '| OAA | `configs/toy/oaa_r18_toy.py` | 0, 1 | 50.00 | ' in md
    assert 'python x' in md and '"seed": 0' in md
    assert '* CAM: `ThresholdBackground` at the best seed threshold of each run' in md


def test_leaderboard_order():
    """Rows: the baseline first, then by mean seed mIoU (best first), whatever the
    order of the methods."""
    cam, oaa, drop = (_spec(c) for c in ('cam_r18_toy.py', 'oaa_r18_toy.py',
                                         'oaa_drop_r18_toy.py'))
    results = {('cam_r18_toy', 0): _result(cam, 0, 60.0, 0.2),
               ('oaa_r18_toy', 0): _result(oaa, 0, 45.0, 0.2),
               ('oaa_drop_r18_toy', 0): _result(drop, 0, 50.0, 0.2)}
    board = compare.build_leaderboard([oaa, drop, cam], [0], results, cam, {},
                                      'python x', '/d')
    assert [r['name'] for r in board['methods']] == ['CAM', 'OAA++', 'OAA']


def test_grid_shows_the_seed_labels(toy_root, tmp_path):
    """The seed labels of a column are CamRecord.seed at its threshold: CAMs of 0.9
    on each GT class give the GT (threshold 0.5), all background at 0.95."""
    import cv2

    from mmwsss.utils.io import read_label_png, voc_palette
    from tests.test_tools.test_bad_inputs import _make_cams
    cams = str(tmp_path / 'cams')
    _make_cams(toy_root, cams)
    items = compare.grid_items(osp.join(TOY, 'cam_r18_toy.py'), toy_root, 3)
    assert len(items) == 3 and all(osp.isfile(p) for i in items for p in i[1:])
    out = str(tmp_path / 'grid.png')
    compare.draw_grid(items, [('GT-CAM', cams, 0.5), ('high', cams, 0.95)], out)
    grid = cv2.imread(out)[..., ::-1]
    tile, gap, header = 128, 2, 22
    assert grid.shape == (header + 3 * tile + 4 * gap, 4 * tile + 5 * gap, 3)
    palette = voc_palette()
    for r, (_, _, gt_path) in enumerate(items):
        gt = read_label_png(gt_path)
        y0 = header + gap + r * (tile + gap)

        def panel(c):
            x0 = gap + c * (tile + gap)
            return grid[y0:y0 + tile, x0:x0 + tile]
        assert gt.shape == (tile, tile)
        np.testing.assert_array_equal(panel(1), palette[gt])
        np.testing.assert_array_equal(panel(2), palette[np.where(gt == 255, 0, gt)])
        assert (panel(3) == palette[0]).all()
    assert (grid[:header] < 128).any()  # the headers are written


# --------------------------------------------------------------- end to end
def _tool(work, *extra):
    p = subprocess.run([sys.executable, TOOL, '--fast', '--configs', 'cam_r18_toy.py',
                        'oaa_r18_toy.py', '--work-dir', work, *extra], cwd=REPO,
                       env=no_network_env(1), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return p.stdout


def test_fast_end_to_end(tmp_path):
    import cv2
    work = str(tmp_path / 'compare')
    out = _tool(work, '--grid-rows', '2')
    assert 'has no toy_meta.json: generating the toy dataset' in out
    board = json.load(open(osp.join(work, 'leaderboard.json')))
    assert [m['name'] for m in board['methods']] == ['CAM', 'OAA']
    assert board['seeds'] == [0] and board['toy_meta']['num_train'] == 24
    for m in board['methods']:
        p = m['per_seed'][0]
        assert p['seed_miou'] is not None and p['step_time_s'] > 0
        assert p['wall_time_s'] > 0 and m['std']['seed_miou'] is None
    assert board['methods'][0]['per_seed'][0]['step_time_rel'] == 1.0
    assert board['methods'][1]['pseudo_label_rule']['type'] == 'SaliencyBackground'
    md = open(osp.join(work, compare.LEADERBOARD_MD)).read()
    rows = [ln for ln in md.splitlines() if ln.startswith('| ')]
    assert [r.split(' | ')[0] for r in rows] == ['| Method', '| CAM', '| OAA']
    assert '--fast --configs cam_r18_toy.py oaa_r18_toy.py' in md
    grid = cv2.imread(osp.join(work, 'grid.png'))
    assert grid.shape == (22 + 2 * 128 + 3 * 2, 4 * 128 + 5 * 2, 3)
    for stem in ('cam_r18_toy', 'oaa_r18_toy'):
        run = osp.join(work, 'runs', stem, 'seed0')
        for name in ('result.json', 'seeds.json', 'pseudo.json', 'log.txt'):
            assert osp.isfile(osp.join(run, name)), name
    logs = {s: open(osp.join(work, 'runs', s, 'seed0', 'log.txt')).read()
            for s in ('cam_r18_toy', 'oaa_r18_toy')}
    steps = {s: json.load(open(osp.join(work, 'runs', s, 'seed0', 'steps.json')))
             for s in logs}
    assert 'export_cams.py' in steps['cam_r18_toy']['seeds']['command']
    assert list(steps['oaa_r18_toy']) == ['train', 'eval', 'pseudo']  # its oaa_maps

    # again: both runs are skipped, no tool runs
    out = _tool(work)
    assert out.count('finished before') == 2, out
    for stem, log in logs.items():
        assert open(osp.join(work, 'runs', stem, 'seed0', 'log.txt')).read() == log
    assert json.load(open(osp.join(work, 'leaderboard.json')))['methods'] == \
        board['methods']
