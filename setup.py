"""mmwsss: weakly supervised semantic segmentation for the OpenMMLab stack.

torch is deliberately not a build requirement: an isolated build environment would fetch
the newest (CUDA) torch. Install torch first (see README / `make install`).

Like MMSegmentation / MMPretrain, the package carries its configs (and tools) as
``mmwsss/.mim/`` so that MMEngine resolves ``mmwsss::cam/cam_vgg16_voc.py`` from any
directory (docs/extending.md): symlinks to the repository's folders for editable
installs, copies for wheels and sdists (see :func:`add_mim_extension`).
"""
import os
import os.path as osp
import platform
import shutil
import sys
import warnings

from setuptools import find_packages, setup

# What MMEngine (``pkg::path`` configs: ``.mim/configs`` and ``.mim/model-index.yml``)
# and MIM (``mim train mmwsss ...``: ``.mim/tools``) look up inside an installed package.
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mmwsss', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def parse_requirements(fname):
    reqs = []
    with open(osp.join(osp.dirname(__file__), fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def _mim_mode(argv):
    """``'symlink'``, ``'copy'`` or ``None`` (nothing to do) for a setup.py call."""
    windows = platform.system() == 'Windows'
    # `pip install -e .`: PEP 660 (`editable_wheel`) or the legacy `develop`
    if 'develop' in argv or 'editable_wheel' in argv:
        return 'copy' if windows else 'symlink'  # symlinks fail on Windows
    # `pip install .`, `pip wheel .`, `python -m build` (sdist, then a wheel from it)
    if any(c in argv for c in ('sdist', 'bdist_wheel', 'build', 'build_py',
                               'install')):
        return 'copy'
    return None


def add_mim_extension():
    """Put the files MMEngine / MIM need into the package as ``mmwsss/.mim/``.

    As in MMSegmentation's setup.py: symlinks to the originals when the package is
    installed in editable mode (so edits of ``configs/`` are seen at once), copies
    otherwise. Two differences: PEP 660 editable installs (``editable_wheel``, what
    pip runs today) count as editable too, and a wheel / sdist build leaves a valid
    symlink in place (the build copies the files it points to; replacing it by a copy
    would silently freeze an editable install's configs). Missing originals (a build
    from an sdist, which already holds ``mmwsss/.mim``) are skipped.
    """
    mode = _mim_mode(sys.argv)
    if mode is None:
        return
    repo_path = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(repo_path, 'mmwsss', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for filename in MIM_FILES:
        src_path = osp.join(repo_path, filename)
        if not osp.exists(src_path):
            continue
        tar_path = osp.join(mim_path, filename)
        src_relpath = osp.relpath(src_path, osp.dirname(tar_path))
        if osp.islink(tar_path):
            if (mode == 'copy' and osp.exists(tar_path)
                    and osp.samefile(tar_path, src_path)):
                continue
            os.remove(tar_path)
        elif osp.isfile(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)

        if mode == 'symlink':
            os.symlink(src_relpath, tar_path)
        elif osp.isfile(src_path):
            shutil.copyfile(src_path, tar_path)
        elif osp.isdir(src_path):
            shutil.copytree(
                src_path, tar_path,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            warnings.warn(f'Cannot copy {src_path}.')


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmwsss',
        version=read_version(),
        description='Weakly supervised semantic segmentation (image-level labels) '
        'for MMEngine / MMSegmentation / MMPretrain',
        long_description=open('README.md').read()
        if osp.exists('README.md') else '',
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        packages=find_packages(
            exclude=('configs', 'tools', 'tests', 'benchmarks')),
        include_package_data=True,  # mmwsss/.mim: MANIFEST.in
        python_requires='>=3.8',
        # torch / torchvision / mmcv are installed by the user (CPU: `make install`;
        # GPU: the matching CUDA builds), so they are not hard requirements here.
        install_requires=parse_requirements('requirements/runtime.txt') + [
            'mmengine>=0.10.0,<1.0.0',
            'mmsegmentation>=1.2.0,<1.3.0',
            'mmpretrain>=1.2.0,<1.3.0',
        ],
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
        },
        zip_safe=False,
    )
