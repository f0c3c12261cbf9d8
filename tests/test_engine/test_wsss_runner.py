"""WSSSRunner: the number-of-classes check and the invalid-loss check are on by
default (configs/_base_/default_runtime.py selects the runner), a listed hook of
either type replaces the default with its settings, and configs do not re-list
them."""
import glob
import os.path as osp
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import REPO

CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if f'{osp.sep}_base_{osp.sep}' not in p)


def _build_runner(toy_root, tmp_path, **overrides):
    """The runner tools/train.py builds for configs/toy/supervised_toy.py (no
    training: the dataloaders are built lazily)."""
    from mmwsss.utils import register_all_modules
    from mmwsss.utils.launch import build_runner, load_config
    register_all_modules(init_default_scope=False)
    cfg = load_config(osp.join(REPO, 'configs', 'toy', 'supervised_toy.py'),
                      {'data_root': toy_root}, str(tmp_path / 'work'))
    for k, v in overrides.items():
        cfg[k] = v
    return build_runner(cfg)


def _of_type(runner, name):
    return [h for h in runner.hooks if type(h).__name__ == name]


def test_shipped_configs_select_the_runner():
    from mmengine.config import Config
    for config in CONFIGS:
        cfg = Config.fromfile(osp.join(REPO, config))
        assert cfg.get('runner_type') == 'WSSSRunner', config
        # method configs list only their own hooks
        listed = {h['type'] for h in cfg.get('custom_hooks') or []}
        listed |= {h['type'] for h in (cfg.get('default_hooks') or {}).values()
                   if isinstance(h, dict)}
        assert not listed & {'WSSSNumClassCheckHook', 'CheckInvalidLossHook'}, (
            config, listed)


def test_config_without_the_hooks_gets_both(toy_root, tmp_path):
    from mmwsss.engine.runner import WSSSRunner
    runner = _build_runner(toy_root, tmp_path)
    assert isinstance(runner, WSSSRunner)
    (num, ) = _of_type(runner, 'WSSSNumClassCheckHook')
    (loss, ) = _of_type(runner, 'CheckInvalidLossHook')
    assert num.enabled and loss.interval == 1
    # MMEngine's priorities still order them
    assert num.priority == 'VERY_HIGH' and loss.priority == 'HIGH'


@pytest.mark.parametrize('listed', [
    [dict(type='CheckInvalidLossHook', interval=0)],
    [dict(type='mmwsss.CheckInvalidLossHook', interval=0)],
    [dict(type='WSSSNumClassCheckHook', enabled=False),
     dict(type='CheckInvalidLossHook', interval=0)],
])
def test_listed_hook_is_used_once_with_its_settings(toy_root, tmp_path, listed):
    runner = _build_runner(toy_root, tmp_path, custom_hooks=listed)
    (loss, ) = _of_type(runner, 'CheckInvalidLossHook')
    assert loss.interval == 0
    (num, ) = _of_type(runner, 'WSSSNumClassCheckHook')
    assert num.enabled == (len(listed) == 1)


def test_hook_in_default_hooks_counts_as_listed(toy_root, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'toy', 'supervised_toy.py'))
    default_hooks = dict(cfg.default_hooks)
    default_hooks['check_invalid_loss'] = dict(type='CheckInvalidLossHook',
                                               interval=3)
    runner = _build_runner(toy_root, tmp_path, default_hooks=default_hooks)
    (loss, ) = _of_type(runner, 'CheckInvalidLossHook')
    assert loss.interval == 3
    assert len(_of_type(runner, 'WSSSNumClassCheckHook')) == 1


def test_mmengine_runner_has_neither(toy_root, tmp_path):
    runner = _build_runner(toy_root, tmp_path, runner_type='Runner')
    assert not _of_type(runner, 'CheckInvalidLossHook')
    assert not _of_type(runner, 'WSSSNumClassCheckHook')


def test_default_hooks_build_in_any_default_scope():
    """The added entries name their class: a user config with
    ``default_scope='mmseg'`` (where the names do not resolve) builds them."""
    from mmengine.registry import HOOKS, DefaultScope

    from mmwsss.engine.hooks import CheckInvalidLossHook, WSSSNumClassCheckHook
    from mmwsss.engine.runner import with_default_custom_hooks
    hooks = with_default_custom_hooks([dict(type='OAAHook')])
    assert [h['type'] for h in hooks] == [
        WSSSNumClassCheckHook, CheckInvalidLossHook, 'OAAHook']
    with DefaultScope.overwrite_default_scope('mmseg'):
        built = [HOOKS.build(dict(h)) for h in hooks[:2]]
    assert isinstance(built[0], WSSSNumClassCheckHook)
    assert isinstance(built[1], CheckInvalidLossHook) and built[1].interval == 1


def test_with_default_custom_hooks_keeps_the_input():
    from mmwsss.engine.hooks import CheckInvalidLossHook
    from mmwsss.engine.runner import with_default_custom_hooks
    custom = [dict(type='CheckInvalidLossHook', interval=5)]
    out = with_default_custom_hooks(custom)
    assert custom == [dict(type='CheckInvalidLossHook', interval=5)]
    assert [h['type'] for h in out][1:] == ['CheckInvalidLossHook']
    # a hook instance counts too, and None entries of default_hooks are skipped
    out = with_default_custom_hooks([CheckInvalidLossHook(interval=2)],
                                    dict(logger=None))
    assert len(out) == 2 and out[1].interval == 2
    assert with_default_custom_hooks(None)[1]['interval'] == 1


def test_disabled_class_check_skips_the_check():
    from mmwsss.engine.hooks import WSSSNumClassCheckHook

    class Head(torch.nn.Module):
        num_classes = 5
        num_classes_excludes_background = True

    runner = SimpleNamespace(
        model=torch.nn.Sequential(Head()),
        train_dataloader=SimpleNamespace(dataset=SimpleNamespace(
            metainfo=dict(classes=('bg', 'a', 'b')))))
    with pytest.raises(ValueError, match='num_classes'):
        WSSSNumClassCheckHook().before_train(runner)
    WSSSNumClassCheckHook(enabled=False).before_train(runner)
    with pytest.raises(ValueError, match='enabled'):
        WSSSNumClassCheckHook(enabled='no')


def test_sampler_batch_size_must_match_the_loader(tmp_path):
    """A sampler that composes its own batches (StrongMixSampler) with another
    batch size than the loader's is refused when the runner builds the loader;
    MMEngine's Runner would cut its batches across the loader's silently."""
    from mmwsss.datasets.toy_generator import make_toy_dataset
    from mmwsss.engine.runner import WSSSRunner
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    root = str(tmp_path / 'toy')
    make_toy_dataset(root, num_train=12, num_val=2)
    (tmp_path / 'pixel.txt').write_text('toy_train_00003\n')

    def cfg(loader_bs, sampler_bs):
        return dict(
            batch_size=loader_bs, num_workers=0,
            sampler=dict(type='StrongMixSampler', batch_size=sampler_bs,
                         num_strong=1),
            dataset=dict(
                type='ToyWSSSDataset', data_root=root,
                ann_file='ImageSets/Segmentation/train.txt',
                data_prefix=dict(img_path='JPEGImages',
                                 seg_map_path='SegmentationClass'),
                strong_subsets=dict(pixel=str(tmp_path / 'pixel.txt')),
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='PackWSSSInputs')]))

    assert WSSSRunner.build_dataloader(cfg(4, 4), seed=0).batch_size == 4
    with pytest.raises(ValueError, match=r'sampler.batch_size.*'
                       r'train_dataloader.batch_size'):
        WSSSRunner.build_dataloader(cfg(4, 3), seed=0)
