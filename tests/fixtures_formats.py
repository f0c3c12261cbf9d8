"""Session fixtures: small trees in the official VOC / SBD / COCO on-disk formats,
converted with the real converters, and stand-in ImageNet weight files.

Registered in tests/conftest.py. See mmwsss/datasets/format_trees.py.
"""
import os.path as osp
import subprocess
import sys

import pytest

__all__ = ['voc_format_root', 'coco_format_root', 'standin_weights']


def _run_tool(args):
    from tests.conftest import REPO, run_env
    p = subprocess.run([sys.executable] + args, cwd=REPO, env=run_env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (f"{' '.join(args)} failed:\n" + p.stdout +
                               p.stderr)
    return p.stdout


@pytest.fixture(scope='session')
def voc_format_root(tmp_path_factory):
    """A VOC 2012 + SBD tree (``make_voc_format_tree``, seed 0: 3 VOC train, 2 VOC
    val, 2 SBD-only ids; small, because every shipped VOC config trains and tests on
    it) after ``tools/dataset_converters/voc_aug.py``.

    Returns the generator's dict plus ``data_root`` (= ``voc_root``, the
    ``data_root`` of the VOC configs) and ``converter_log``. Read-only for tests.
    """
    from mmwsss.datasets.format_trees import make_voc_format_tree
    root = str(tmp_path_factory.mktemp('voc_format'))
    meta = make_voc_format_tree(root, seed=0, num_voc_train=3, num_voc_val=2,
                                num_sbd_only=2)
    log = _run_tool([
        'tools/dataset_converters/voc_aug.py', '--voc-root', meta['voc_root'],
        '--sbd-root', meta['sbd_root']
    ])
    return dict(meta, data_root=meta['voc_root'], converter_log=log)


@pytest.fixture(scope='session')
def coco_format_root(tmp_path_factory):
    """A COCO 2014 tree (``make_coco_format_tree``, seed 0: 4 train incl. one
    without annotations, 3 val) after ``tools/dataset_converters/coco_wsss.py``.

    Returns the generator's dict (``root`` = ``data_root``, the ``data_root`` of
    ``configs/_base_/datasets/coco14.py``) plus ``converter_log``. Read-only.
    """
    from mmwsss.datasets.format_trees import make_coco_format_tree
    root = osp.join(str(tmp_path_factory.mktemp('coco_format')), 'coco2014')
    meta = make_coco_format_tree(root, seed=0)
    log = _run_tool(
        ['tools/dataset_converters/coco_wsss.py', '--coco-root', meta['root']])
    return dict(meta, converter_log=log)


@pytest.fixture(scope='session')
def standin_weights(tmp_path_factory):
    """{file name: path} of the stand-in ImageNet weights (random, seeded) in one
    folder ``<tmp>/pretrained/``: ``vgg16-397923af.pth`` (torchvision format, ~530
    MB), ``deeplab_resnet101_imagenet_mmwsss.pth`` (documented converter,
    --backbone-only) and ``resnet101_v1c-e67eebb6.pth`` (MMSeg ResNetV1c-101)."""
    from mmwsss.datasets.format_trees import make_standin_weights
    out = str(tmp_path_factory.mktemp('standin') / 'pretrained')
    return make_standin_weights(out, seed=0)
