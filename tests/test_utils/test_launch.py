import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmwsss.utils import launch
from tests.conftest import REPO


def _cfg(**kw):
    cfg = Config(
        dict(
            model=dict(
                type='EncoderDecoder',
                backbone=dict(norm_cfg=dict(type='SyncBN')),
                decode_head=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
                auxiliary_head=[dict(norm_cfg=dict(type='BN'))]),
            optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD')),
            **kw))
    return cfg


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_setup_device_cpu_distributed(monkeypatch):
    calls = []
    monkeypatch.setattr(launch, '_init_gloo', lambda l: calls.append(l))
    cfg = _cfg(launcher='pytorch', find_unused_parameters=True)
    with pytest.warns(UserWarning, match='2 SyncBN'):
        launch.setup_device(cfg)
    assert calls == ['pytorch']
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == \
        'mmwsss.DeviceAwareDistributedDataParallel'
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.decode_head.norm_cfg.type == 'BN'


def test_setup_device_non_distributed_untouched(monkeypatch):
    monkeypatch.setattr(launch, '_init_gloo', lambda l: 1 / 0)
    cfg = _cfg(launcher='none')
    launch.setup_device(cfg)
    assert 'model_wrapper_cfg' not in cfg
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_amp_on_cpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match='--amp needs a CUDA device'):
        launch.enable_amp(_cfg())


def test_load_config_precedence(tmp_path, repo_root):
    import os.path as osp
    path = osp.join(repo_root, 'configs', 'toy', 'supervised_toy.py')
    cfg = launch.load_config(path, {'train_cfg.max_iters': 7}, None, 'none')
    assert cfg.work_dir == './work_dirs/supervised_toy'
    assert cfg.train_cfg.max_iters == 7 and cfg.default_scope == 'mmwsss'
    cfg = launch.load_config(path, None, str(tmp_path), 'pytorch')
    assert cfg.work_dir == str(tmp_path) and cfg.launcher == 'pytorch'
    with pytest.raises(FileNotFoundError, match='config file'):
        launch.load_config(str(tmp_path / 'nope.py'))


def test_device_aware_ddp_drops_device_ids_on_cpu(monkeypatch):
    """The CPU wrapper must not hand device_ids to torch's DDP for CPU modules."""
    from mmengine.model import MMDistributedDataParallel

    from mmwsss.models.wrappers import DeviceAwareDistributedDataParallel
    seen = {}

    def fake_init(self, module, device_ids=None, **kwargs):
        seen.update(device_ids=device_ids, **kwargs)

    monkeypatch.setattr(MMDistributedDataParallel, '__init__', fake_init)
    DeviceAwareDistributedDataParallel(
        torch.nn.Linear(2, 2), device_ids=[0], output_device=0,
        broadcast_buffers=False)
    assert seen == dict(device_ids=None, broadcast_buffers=False)


def test_run_releases_the_runner_before_destroying_the_process_group(
        monkeypatch):
    """The DDP wrapper holds the gloo process group: if the Runner is still alive
    when the group is destroyed, the group's C++ object outlives
    ``destroy_process_group`` and is torn down during interpreter finalisation,
    where gloo can abort ("terminate called without an active exception")."""
    import weakref

    class FakeRunner:

        def test(self):
            return {'mIoU': 1.0}

    refs = []
    alive_at_destroy = []

    def build(cfg):
        r = FakeRunner()
        refs.append(weakref.ref(r))
        return r

    monkeypatch.setattr(launch, 'setup_device', lambda cfg: None)
    monkeypatch.setattr(launch, 'build_runner', build)
    monkeypatch.setattr(launch.torch_dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(launch.torch_dist, 'barrier', lambda: None)
    monkeypatch.setattr(
        launch.torch_dist, 'destroy_process_group',
        lambda: alive_at_destroy.append(refs[0]() is not None))
    assert launch.run(Config(dict(launcher='pytorch')), 'test') == {'mIoU': 1.0}
    assert alive_at_destroy == [False]


def test_load_config_by_package_scope():
    """The tools accept a shipped config by its ``mmwsss::`` name."""
    from mmwsss.utils.launch import load_config
    cfg = load_config('mmwsss::oaa/oaa_vgg16_voc.py')
    assert any(h['type'] == 'OAAHook' for h in cfg.custom_hooks)
    assert cfg.work_dir.endswith('oaa_vgg16_voc')


def test_network_is_blocked_in_test_subprocesses():
    """The guard the VOC-config tests run under (tests/no_network) really blocks a
    download, and leaves loopback alone."""
    import subprocess
    import sys

    from tests.conftest import no_network_env
    code = ('import socket, urllib.request\n'
            'try:\n'
            '    urllib.request.urlopen("https://download.openmmlab.com/x", '
            'timeout=5)\n'
            'except OSError as e:\n'
            '    print("blocked:", e)\n'
            's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)\n'
            'c = socket.create_connection(s.getsockname()); print("loopback ok")\n')
    p = subprocess.run([sys.executable, '-c', code], env=no_network_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert 'blocked: ' in p.stdout and 'must not download' in p.stdout
    assert 'loopback ok' in p.stdout


@pytest.mark.parametrize('key,value,match', [
    ('train_cfg.max_epochs', -1, r'train_cfg.max_epochs=-1: must be an integer >= 1'),
    ('train_cfg.max_epochs', 'abc', r"train_cfg.max_epochs='abc'"),
    ('train_dataloader.batch_size', 0, r'train_dataloader.batch_size=0'),
    ('optim_wrapper.optimizer.lr', 'x', r'optim_wrapper.optimizer.lr'),
])
def test_schedule_and_loader_mistakes_name_the_key(key, value, match):
    """``max_epochs=-1`` trained nothing with exit 0; ``max_epochs=abc`` failed deep
    in MMEngine with ``int('abc')``."""
    from mmwsss.utils.launch import check_config_basics, load_config
    cfg = load_config(osp.join(REPO, 'configs', 'cam', 'cam_vgg16_voc.py'),
                      {key: value})
    with pytest.raises(ValueError, match=match):
        check_config_basics(cfg, 'train')
    check_config_basics(load_config(
        osp.join(REPO, 'configs', 'cam', 'cam_vgg16_voc.py')), 'train')


def test_cfg_option_without_equal_sign_is_a_usage_error(capsys):
    import argparse

    from mmwsss.utils.launch import add_common_args
    parser = argparse.ArgumentParser(prog='train.py')
    add_common_args(parser)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(['--cfg-options', 'train_cfg.max_epochs'])
    assert e.value.code == 2
    assert "'train_cfg.max_epochs' is not key=value" in capsys.readouterr().err
