import os
import os.path as osp
import sys

import pytest

import mmwsss  # noqa: F401  (compat shims first)
from tests.fixtures_formats import *  # noqa: F401,F403

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def repo_root():
    return REPO


@pytest.fixture(scope='session')
def toy_root(tmp_path_factory):
    """A small toy dataset shared by the whole session (read-only for tests)."""
    from mmwsss.datasets import make_toy_dataset
    root = str(tmp_path_factory.mktemp('toy') / 'toy')
    make_toy_dataset(root, seed=0, num_train=16, num_val=8)
    return root


@pytest.fixture
def toy_copy(toy_root, tmp_path):
    """A private, writable copy of the toy dataset (for tests that corrupt it)."""
    import shutil
    dst = str(tmp_path / 'toy')
    shutil.copytree(toy_root, dst)
    return dst


@pytest.fixture(scope='session')
def python_exe():
    return sys.executable


def run_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


NO_NETWORK_DIR = osp.join(REPO, 'tests', 'no_network')


def no_network_env(threads: int = 1):
    """:func:`run_env` with Python-level network access blocked in the subprocess
    (``tests/no_network/sitecustomize.py``): a download attempt fails the run."""
    env = run_env()
    env['PYTHONPATH'] = NO_NETWORK_DIR + os.pathsep + env['PYTHONPATH']
    env['OMP_NUM_THREADS'] = str(threads)
    return env
