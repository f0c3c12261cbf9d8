"""``mmwsss::`` configs from outside the repository (mmwsss.utils.config_scope, setup.py).

Every subprocess runs with its working directory in a temporary folder outside the
repository, the repository not on ``PYTHONPATH`` (mmwsss is found as installed, the
editable install of ``make install``), and the user's config in another temporary
folder.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from tests.conftest import REPO

PY = sys.executable


def _user_env():
    env = dict(os.environ)
    paths = [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
             if p and osp.abspath(p) != REPO]
    if paths:
        env['PYTHONPATH'] = os.pathsep.join(paths)
    else:
        env.pop('PYTHONPATH', None)
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def _run(args, cwd, timeout=600):
    return subprocess.run(args, cwd=cwd, env=_user_env(), capture_output=True,
                          text=True, timeout=timeout)


def _ok(p):
    assert p.returncode == 0, p.stdout[-3000:] + '\n' + p.stderr[-5000:]
    return p


@pytest.fixture(scope='module')
def installed_pkg():
    """The folder of the installed mmwsss package as MMEngine finds it."""
    from mmengine.utils import get_installed_path

    import mmwsss  # noqa: F401
    path = get_installed_path('mmwsss')
    mim = osp.join(path, '.mim')
    assert osp.isfile(osp.join(mim, 'model-index.yml')) and osp.isdir(
        osp.join(mim, 'configs')), (
            f'{mim} is missing or incomplete: re-install mmwsss '
            '(`pip install --no-build-isolation --no-deps -e .`, or `make install`)'
            ' so that setup.py creates it')
    return path


@pytest.fixture
def dirs(tmp_path):
    """(user config folder, working directory), both outside the repository."""
    user, cwd = tmp_path / 'user_project', tmp_path / 'elsewhere'
    user.mkdir()
    cwd.mkdir()
    assert not str(tmp_path).startswith(REPO)
    return str(user), str(cwd)


def _write(folder, name, text):
    path = osp.join(folder, name)
    with open(path, 'w') as f:
        f.write(textwrap.dedent(text))
    return path


USER_OAA = """\
    _base_ = 'mmwsss::oaa/oaa_vgg16_voc.py'
    model = dict(head=dict(num_classes=5))
    train_dataloader = dict(batch_size=3)
    my_pipeline = {{_base_.train_pipeline}}
    my_hooks = [h['type'] for h in _base_.custom_hooks]
    default_scope = 'mmseg'  # a user default scope: mmwsss:: dicts keep theirs
"""

PROBE = """\
import json, os, os.path as osp, sys
import mmwsss
from mmengine.config import Config
from mmengine.registry import DefaultScope, MODELS
from mmengine.utils import get_installed_path
cfg = Config.fromfile(sys.argv[1])
mim = osp.join(get_installed_path('mmwsss'), '.mim', 'configs')
# every file read (the config text starts each one with its path)
files = [l for l in cfg.text.splitlines() if l.endswith('.py') and osp.isabs(l)]
with DefaultScope.overwrite_default_scope(cfg.default_scope):
    model = MODELS.build(cfg.model)  # the root registry, user scope 'mmseg'
from mmwsss.pseudo import build_pseudo_label_rule
rule = build_pseudo_label_rule(cfg.pseudo_label_rule)
from mmwsss.engine.runner import with_default_custom_hooks
runner_hooks = with_default_custom_hooks(cfg.custom_hooks, cfg.get('default_hooks'))
print('PROBE' + json.dumps(dict(
    hooks=[h['type'] for h in cfg.custom_hooks],
    runner_type=cfg.get('runner_type'),
    runner_hooks=[getattr(h['type'], '__name__', h['type']) for h in runner_hooks],
    hook_scopes=[h.get('_scope_') for h in cfg.custom_hooks],
    head=cfg.model.head.type, num_classes=cfg.model.head.num_classes,
    model_scope=cfg.model.get('_scope_'), default_scope=cfg.default_scope,
    batch_size=cfg.train_dataloader.batch_size,
    sampler=cfg.train_dataloader.sampler.type,
    my_pipeline=[t['type'] for t in cfg.my_pipeline], my_hooks=cfg.my_hooks,
    files=files, mim=mim, cwd=os.getcwd(),
    # what MMEngine itself answers (without mmwsss's get_installed_path shim)
    mmengine_path=get_installed_path._mmwsss_wrapped('mmwsss'),
    model=type(model).__module__ + '.' + type(model).__name__,
    rule=type(rule).__module__,
    modules=sorted(m for m in sys.modules if m.split('.')[0] == 'mmwsss'
                   and m.count('.') == 1))))
"""


def _probe(p):
    line = [x for x in p.stdout.splitlines() if x.startswith('PROBE')]
    assert line, p.stdout[-3000:] + '\n' + p.stderr[-5000:]
    return json.loads(line[-1][len('PROBE'):])


def test_user_config_inherits_mmwsss_config(installed_pkg, dirs):
    """(a) `_base_ = 'mmwsss::oaa/oaa_vgg16_voc.py'` plus overrides, in a fresh
    process that imports mmwsss first; `{{_base_.x}}` and `_base_.x` reads; the model
    builds from mmwsss's registries although the user's default scope is mmseg."""
    user, cwd = dirs
    cfg_path = _write(user, 'my_oaa.py', USER_OAA)
    probe = _write(user, 'probe.py', PROBE)
    out = _probe(_ok(_run([PY, probe, cfg_path], cwd=cwd)))
    assert out['cwd'] == cwd
    # inherited; the runner adds its two checks to the config's own hooks
    assert out['hooks'] == ['OAAHook']
    assert out['runner_type'] == 'WSSSRunner'
    assert out['runner_hooks'] == [
        'WSSSNumClassCheckHook', 'CheckInvalidLossHook', 'OAAHook']
    assert out['head'] == 'CAMHead'
    assert out['sampler'] == 'DefaultSampler'
    # overridden
    assert out['num_classes'] == 5 and out['batch_size'] == 3
    assert out['default_scope'] == 'mmseg'
    # {{_base_.train_pipeline}} and _base_.custom_hooks
    assert out['my_pipeline'][0] == 'LoadImageFromFile'
    assert out['my_hooks'] == ['OAAHook']
    # the dicts of an mmwsss:: config carry mmwsss's scope ...
    assert out['model_scope'] == 'mmwsss'
    assert out['hook_scopes'] == ['mmwsss']
    # ... so they build with mmwsss's registries, whatever the default scope
    assert out['model'].startswith('mmwsss.models.')
    assert out['rule'].startswith('mmwsss.pseudo.')
    # every base was read from the installed package (relative `_base_` paths of
    # the shipped configs stay inside .mim/configs), the user's file from its folder
    files = out['files']
    assert files[-1] == cfg_path
    bases = files[:-1]
    assert len(bases) >= 6, files
    assert all(f.startswith(out['mim'] + os.sep) for f in bases), files
    rel = sorted(osp.relpath(f, out['mim']) for f in bases)
    for want in ('oaa/oaa_vgg16_voc.py', 'cam/cam_vgg16_voc.py',
                 '_base_/models/cam_vgg16.py', '_base_/default_runtime.py',
                 '_base_/datasets/voc12_aug.py'):
        assert want in rel, rel


def test_editable_install_links_the_repository_configs(installed_pkg):
    """An editable install (make install) links .mim/ to the repository, so edits of
    configs/ are seen at once; a wheel holds copies (test_wheel_ships_configs)."""
    from mmwsss.utils.config_scope import mim_path, resolve_config
    if osp.realpath(installed_pkg) != osp.join(REPO, 'mmwsss'):
        pytest.skip(f'mmwsss is not installed in editable mode ({installed_pkg})')
    assert mim_path() == osp.join(REPO, 'mmwsss', '.mim')
    for name in ('configs', 'tools', 'model-index.yml'):
        link = osp.join(mim_path(), name)
        assert osp.islink(link), link
        assert osp.samefile(link, osp.join(REPO, name))
    path = resolve_config('mmwsss::cam/cam_vgg16_voc.py')
    assert path == osp.join(mim_path(), 'configs', 'cam', 'cam_vgg16_voc.py')
    assert osp.samefile(path, osp.join(REPO, 'configs', 'cam', 'cam_vgg16_voc.py'))
    assert resolve_config('a/b.py') == 'a/b.py'


def test_load_mmwsss_config_directly(installed_pkg, dirs):
    """`mmengine.hub.get_config('mmwsss::...')`, `mmengine.hub.get_model(...)` and
    `Config.fromfile(resolve_config('mmwsss::...'))` from an unrelated folder
    (MMEngine's `Config.fromfile` takes `pkg::` only inside `_base_`)."""
    _, cwd = dirs
    code = textwrap.dedent("""\
        import mmwsss
        from mmengine.config import Config
        from mmengine.hub import get_config, get_model
        from mmwsss.utils.config_scope import resolve_config
        a = get_config('mmwsss::cam/cam_vgg16_voc.py')
        b = Config.fromfile(resolve_config('mmwsss::toy/cam_r18_toy.py'))
        m = get_model('mmwsss::toy/cam_r18_toy.py')
        print('OK', a.model.head.type, a.default_scope, b.model.backbone.type,
              b.train_dataloader.dataset.type, type(m).__name__)
    """)
    p = _ok(_run([PY, '-c', code], cwd=cwd))
    assert ('OK CAMHead mmwsss ResNetV1c ToyWSSSDataset WSClassifier'
            in p.stdout), p.stdout[-2000:] + p.stderr[-3000:]


def test_without_import_mmwsss_mmengine_refuses(installed_pkg, dirs):
    """(c) MMEngine reads its package table while parsing `_base_`, before any of
    the config runs: without `import mmwsss` first the error is MMEngine's own (the
    documented requirement, as MMSeg's register_all_modules)."""
    user, cwd = dirs
    cfg_path = _write(user, 'my_oaa.py', USER_OAA)
    code = ('import sys; from mmengine.config import Config; '
            'Config.fromfile(sys.argv[1])')
    p = _run([PY, '-c', code, cfg_path], cwd=cwd)
    assert p.returncode != 0
    assert 'mmengine does not support to load mmwsss config' in p.stderr, \
        p.stderr[-3000:]


def test_train_tool_with_user_config(installed_pkg, dirs, toy_root):
    """(b) tools/train.py with a user config `_base_ = 'mmwsss::toy/oaa_r18_toy.py'`
    trains one iteration (one epoch of 16 toy images, batch 16) from an unrelated
    working directory: the model, the dataset and the OAAHook (writing its maps)
    all come from the mmwsss:: config."""
    user, cwd = dirs
    cfg_path = _write(user, 'my_toy_oaa.py', f"""\
        _base_ = 'mmwsss::toy/oaa_r18_toy.py'
        toy = {toy_root!r}
        train_dataloader = dict(batch_size=16, dataset=dict(data_root=toy))
        val_dataloader = dict(dataset=dict(data_root=toy))
        test_dataloader = dict(dataset=dict(data_root=toy))
        train_cfg = dict(max_epochs=1)
        default_hooks = dict(logger=dict(interval=1))
    """)
    work = osp.join(cwd, 'work')
    p = _ok(_run([PY, osp.join(REPO, 'tools', 'train.py'), cfg_path,
                  '--work-dir', work], cwd=cwd))
    log = p.stdout + p.stderr
    assert osp.isfile(osp.join(work, 'epoch_1.pth')), log[-3000:]
    maps = os.listdir(osp.join(work, 'oaa_maps'))
    assert maps and all(m.endswith('.npz') for m in maps), maps
    assert not osp.exists(osp.join(REPO, 'work_dirs', 'my_toy_oaa'))
    # the dumped config is self-contained: it loads without mmwsss:: lookups
    dumped = osp.join(work, 'my_toy_oaa.py')
    assert osp.isfile(dumped)
    code = ('import sys; from mmengine.config import Config; '
            'c = Config.fromfile(sys.argv[1]); print(c.model.head.type)')
    assert 'CAMHead' in _ok(_run([PY, '-c', code, dumped], cwd=cwd)).stdout


def test_mim_mode_of_setup_commands():
    """setup.py: symlinks for editable installs (PEP 660 `editable_wheel`, legacy
    `develop`), copies for wheels / sdists, nothing for metadata-only calls."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('mmwsss_setup',
                                                  osp.join(REPO, 'setup.py'))
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)  # setup() only runs as __main__
    mode = setup_py._mim_mode
    assert mode(['setup.py', 'editable_wheel', '--dist-dir', 'x']) == 'symlink'
    assert mode(['setup.py', 'develop']) == 'symlink'
    assert mode(['setup.py', 'bdist_wheel', '--dist-dir', 'x']) == 'copy'
    assert mode(['setup.py', 'sdist']) == 'copy'
    assert mode(['setup.py', 'dist_info', '--output-dir', 'x']) is None
    assert mode(['setup.py', 'egg_info']) is None


def _copy_source_tree(dst):
    """What a fresh clone has: the tracked layout, without any .mim or build."""
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim', '*.egg-info',
                                    'build', 'dist')
    for name in ('mmwsss', 'configs', 'tools', 'requirements'):
        shutil.copytree(osp.join(REPO, name), osp.join(dst, name), ignore=ignore)
    for name in ('setup.py', 'MANIFEST.in', 'model-index.yml', 'README.md'):
        shutil.copyfile(osp.join(REPO, name), osp.join(dst, name))


def _wheel(src, out, cwd):
    t0 = time.time()
    _ok(_run([PY, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
              '--no-index', '-q', '-w', out, src], cwd=cwd, timeout=300))
    whl = [f for f in os.listdir(out) if f.endswith('.whl')]
    assert len(whl) == 1, whl
    return osp.join(out, whl[0]), time.time() - t0


def _walk(root):
    for d, _, files in os.walk(root):
        for f in files:
            yield osp.join(d, f)


def _shipped(names, prefix, src):
    """`names` (archive members) hold .mim/ under `prefix`, as `src` has it."""
    want = ['model-index.yml', 'configs/oaa/oaa_vgg16_voc.py',
            'configs/cam/cam_vgg16_voc.py', 'configs/_base_/default_runtime.py',
            'configs/_base_/models/cam_vgg16.py',
            'configs/_base_/datasets/voc12_aug_cls.py',
            'configs/_base_/datasets/voc12_aug.py',
            'configs/_base_/schedules/schedule_cam_voc.py',
            'configs/toy/oaa_r18_toy.py', 'tools/train.py', 'tools/dist_train.sh']
    missing = [w for w in want if prefix + w not in names]
    assert not missing, (missing, sorted(names)[:50])
    shipped = sorted(n[len(prefix):] for n in names
                     if n.startswith(prefix + 'configs/') and n.endswith('.py'))
    configs = sorted(osp.relpath(p, src) for p in _walk(osp.join(src, 'configs'))
                     if p.endswith('.py'))
    assert shipped == configs
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]


@pytest.fixture(scope='module')
def clone(tmp_path_factory):
    """A fresh copy of the source tree and a working directory outside both."""
    root = tmp_path_factory.mktemp('clone')
    src, cwd = root / 'src', root / 'cwd'
    src.mkdir()
    cwd.mkdir()
    _copy_source_tree(str(src))
    return root, str(src), str(cwd)


@pytest.fixture(scope='module')
def wheel(clone):
    root, src, cwd = clone
    whl, secs = _wheel(src, str(root / 'wheel'), cwd)
    assert secs < 60, f'the wheel build took {secs:.0f} s'
    return whl


def test_wheel_ships_configs(clone, wheel, tmp_path):
    """(d) A wheel built from a fresh copy of the source tree (copy mode) holds
    mmwsss/.mim/configs (every config, the _base_ files), the tools and the model
    index; so does a wheel built where an editable install left .mim symlinks (the
    build copies what they point to and leaves the links in place)."""
    _, src, cwd = clone
    with zipfile.ZipFile(wheel) as z:
        _shipped(set(z.namelist()), 'mmwsss/.mim/', src)
    # copy mode: real folders in the source tree, not links
    mim = osp.join(src, 'mmwsss', '.mim')
    assert osp.isdir(osp.join(mim, 'configs'))
    assert not osp.islink(osp.join(mim, 'configs'))

    # the editable layout: links; a wheel build keeps them and ships real files
    linked = str(tmp_path / 'linked')
    shutil.copytree(src, linked, ignore=shutil.ignore_patterns('.mim', 'build',
                                                               '*.egg-info'))
    lmim = osp.join(linked, 'mmwsss', '.mim')
    os.makedirs(lmim)
    for name in ('configs', 'tools', 'model-index.yml'):
        os.symlink(osp.join('..', '..', name), osp.join(lmim, name))
    whl, _ = _wheel(linked, str(tmp_path / 'w2'), cwd)
    assert osp.islink(osp.join(lmim, 'configs'))
    with zipfile.ZipFile(whl) as z:
        _shipped(set(z.namelist()), 'mmwsss/.mim/', src)
        data = z.read('mmwsss/.mim/configs/oaa/oaa_vgg16_voc.py')
    with open(osp.join(src, 'configs', 'oaa', 'oaa_vgg16_voc.py'), 'rb') as f:
        assert data == f.read()


def test_sdist_then_wheel_ships_configs(clone, tmp_path):
    """The sdist carries mmwsss/.mim (and requirements/ for setup.py); a wheel built
    from it (no top-level configs/ there) still ships every config."""
    import tarfile
    _, src, cwd = clone
    out = str(tmp_path / 'sdist')
    _ok(_run([PY, 'setup.py', '-q', 'sdist', '-d', out], cwd=src, timeout=300))
    tgz = [f for f in os.listdir(out) if f.endswith('.tar.gz')]
    assert len(tgz) == 1, tgz
    with tarfile.open(osp.join(out, tgz[0])) as t:
        names = set(t.getnames())
    top = tgz[0][:-len('.tar.gz')] + '/'
    _shipped(names, top + 'mmwsss/.mim/', src)
    assert top + 'requirements/runtime.txt' in names
    assert top + 'configs/cam/cam_vgg16_voc.py' not in names
    whl, _ = _wheel(osp.join(out, tgz[0]), str(tmp_path / 'w'), cwd)
    with zipfile.ZipFile(whl) as z:
        _shipped(set(z.namelist()), 'mmwsss/.mim/', src)


def test_wheel_install_resolves_copied_configs(clone, wheel, dirs, tmp_path):
    """mmwsss installed from the wheel (`pip install --target`, first on the path):
    `mmwsss::` resolves to the copies in <target>/mmwsss/.mim/configs."""
    _, _, cwd0 = clone
    target = str(tmp_path / 'site')
    _ok(_run([PY, '-m', 'pip', 'install', '--no-deps', '--no-index', '-q',
              '--target', target, wheel], cwd=cwd0, timeout=300))
    user, cwd = dirs
    cfg_path = _write(user, 'my_oaa.py', USER_OAA)
    probe = _write(user, 'probe.py', PROBE)
    env = _user_env()
    env['PYTHONPATH'] = os.pathsep.join(
        [target] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    p = subprocess.run([PY, probe, cfg_path], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    out = _probe(_ok(p))
    mim = osp.join(target, 'mmwsss', '.mim', 'configs')
    assert out['mim'] == mim
    assert out['model'].startswith('mmwsss.models.')
    bases = out['files'][:-1]
    assert len(bases) >= 6 and all(f.startswith(mim + os.sep) for f in bases)
    assert not any(osp.islink(f) for f in bases)
    assert not osp.islink(mim)
    # for a wheel, MMEngine's own get_installed_path agrees (no shim needed)
    assert out['mmengine_path'] == osp.join(target, 'mmwsss')
    assert out['hooks'] == ['OAAHook']
    assert out['runner_hooks'] == [
        'WSSSNumClassCheckHook', 'CheckInvalidLossHook', 'OAAHook']
