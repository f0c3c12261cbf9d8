"""``mmwsss::`` configs: make the package known to MMEngine's config lookup.

MMEngine resolves ``_base_ = 'pkg::path/to/config.py'`` (and
:func:`mmengine.hub.get_config` / :func:`mmengine.hub.get_model`) only for the modules
listed in ``mmengine.config.utils.MODULE2PACKAGE`` (alias ``PKG2PROJECT``), a fixed
table of the OpenMMLab libraries. :func:`register_config_scope`, called when
:mod:`mmwsss` is imported, adds ``'mmwsss'`` to it. Then MMEngine looks the file up as

1. ``get_installed_path('mmwsss')`` -- the folder of the installed package
   (``site-packages/mmwsss`` for a wheel, ``<repo>/mmwsss`` for an editable install;
   see below);
2. ``<package>/.mim/model-index.yml`` and its metafiles (mmwsss ships an empty index,
   so step 3 always applies);
3. ``<package>/.mim/configs/<path>``: a copy of ``configs/`` in a wheel, a symlink to
   the repository's ``configs/`` in an editable install (``setup.py``,
   ``add_mim_extension``).

Relative ``_base_`` paths inside a shipped config (``'../_base_/models/x.py'``) are
joined to that file's folder, so they stay inside ``.mim/configs``; the dicts with a
``type`` of every config read through ``mmwsss::`` get ``_scope_='mmwsss'``, so they
are built from mmwsss's registries whatever the user's ``default_scope``.

Editable installs: MMEngine's ``get_installed_path`` answers
``<dist location>/<top-level module>``, i.e. ``site-packages/mmwsss``, which exists for a
wheel and for a legacy ``setup.py develop`` install from the repository root, but not
for a PEP 660 editable install (what ``pip install -e .`` does with setuptools >= 64:
only a ``__editable__`` finder and the dist-info are in site-packages). So
:func:`register_config_scope` also makes MMEngine's ``get_installed_path`` answer the
folder of the imported ``mmwsss`` package for ``'mmwsss'`` (and nothing else changes:
every other package is passed through).

MMEngine reads the table while it parses ``_base_``, before anything of the config
runs, so ``mmwsss`` must be imported before ``Config.fromfile`` (the mmwsss tools do;
in your own scripts ``import mmwsss`` first, as MMSeg needs ``register_all_modules``).
"""
import functools
import os.path as osp
import sys

SCOPE = 'mmwsss'

# the modules that bind MMEngine's get_installed_path by name (``from ... import``)
_INSTALLED_PATH_USERS = ('mmengine.utils.package_utils', 'mmengine.utils',
                         'mmengine.config.config', 'mmengine.hub.hub',
                         'mmengine.hub')


def package_dir() -> str:
    """The folder of the imported ``mmwsss`` package (``<repo>/mmwsss`` for an
    editable install, ``site-packages/mmwsss`` for a wheel)."""
    return osp.dirname(osp.dirname(osp.abspath(__file__)))


def _wrap_get_installed_path(get_installed_path):
    if getattr(get_installed_path, '_mmwsss_wrapped', None) is not None:
        return get_installed_path

    @functools.wraps(get_installed_path)
    def wrapper(package: str) -> str:
        if package == SCOPE:
            return package_dir()
        return get_installed_path(package)

    wrapper._mmwsss_wrapped = get_installed_path
    return wrapper


def register_config_scope() -> None:
    """Add ``'mmwsss'`` to MMEngine's package table, and make MMEngine's
    ``get_installed_path('mmwsss')`` the imported package's folder (idempotent)."""
    import mmengine.config  # noqa: F401  (binds get_installed_path in config.config)
    from mmengine.config import utils as cfg_utils

    # PKG2PROJECT is the same dict object (a deprecated alias) in MMEngine 0.10.x;
    # update both in case a later version makes them two tables.
    for table in (getattr(cfg_utils, 'MODULE2PACKAGE', None),
                  getattr(cfg_utils, 'PKG2PROJECT', None)):
        if isinstance(table, dict):
            table.setdefault(SCOPE, SCOPE)
    # mmengine.hub imported later binds the wrapper from mmengine.utils
    for name in _INSTALLED_PATH_USERS:
        module = sys.modules.get(name)
        fn = getattr(module, 'get_installed_path', None)
        if callable(fn):
            setattr(module, 'get_installed_path', _wrap_get_installed_path(fn))


def mim_path() -> str:
    """``<package>/.mim``: where the shipped configs, tools and model index live."""
    return osp.join(package_dir(), '.mim')


def resolve_config(path: str) -> str:
    """The file of ``'mmwsss::cam/cam_vgg16_voc.py'`` (other paths are returned as
    they are), the way MMEngine resolves a ``_base_`` entry.

    ``Config.fromfile`` of MMEngine 0.10 accepts ``pkg::`` only inside ``_base_``;
    use ``Config.fromfile(resolve_config(p))`` or :func:`mmengine.hub.get_config`
    to load one directly.
    """
    if '::' not in path:
        return path
    register_config_scope()
    from mmengine.config import Config
    cfg_path, _ = Config._get_cfg_path(path, '')
    return cfg_path
