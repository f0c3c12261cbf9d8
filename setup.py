"""mmwsss: weakly supervised semantic segmentation for the OpenMMLab stack.

torch is deliberately not a build requirement: an isolated build environment would fetch
the newest (CUDA) torch. Install torch first (see README / `make install`).
"""
import os.path as osp

from setuptools import find_packages, setup


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


setup(
    name='mmwsss',
    version=read_version(),
    description='Weakly supervised semantic segmentation (image-level labels) '
    'for MMEngine / MMSegmentation / MMPretrain',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'benchmarks')),
    include_package_data=True,
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
