"""What ``tools/train.py`` and ``tools/test.py`` share: config loading with the
MMSeg-compatible flags, and CPU-only distributed runs (gloo)."""
import gc
import logging
import os
import os.path as osp
import re
import warnings
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log


def key_value_action():
    """MMEngine's ``DictAction`` that refuses an item without ``=`` with a usage
    error naming it (MMEngine fails with an unpacking traceback)."""
    import argparse

    from mmengine.config import DictAction

    class KeyValueAction(DictAction):

        def __call__(self, parser, namespace, values, option_string=None):
            items = values if isinstance(values, (list, tuple)) else [values]
            for item in items:
                key = str(item).partition('=')[0]
                if '=' not in str(item) or not key.strip():
                    raise argparse.ArgumentError(
                        self, f'{item!r} is not key=value (e.g. '
                        'train_cfg.max_epochs=2 "model.test_cfg.scales=[1.0]")')
            super().__call__(parser, namespace, values, option_string)

    return KeyValueAction


def add_common_args(parser, work_dir_help: str = 'the dir to save logs and '
                    'models') -> None:
    """The flags every mmwsss runner tool shares (MMSeg-compatible):
    ``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=key_value_action(),
        help='override settings of the config, key=value pairs '
        '(e.g. train_cfg.max_iters=100 "a.b=[1,2]")')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_common(parser):
    """``parser.parse_args()`` plus the ``LOCAL_RANK`` fallback of MMSeg's tools."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _replace_strings(node, old: str, new: str) -> int:
    """Replace every string equal to ``old`` in a nested config by ``new``."""
    n = 0
    if isinstance(node, dict):
        for k in list(node.keys()):
            v = node[k]
            if isinstance(v, str) and v == old:
                node[k] = new
                n += 1
            else:
                n += _replace_strings(v, old, new)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, str) and v == old:
                node[i] = new
                n += 1
            else:
                n += _replace_strings(v, old, new)
    return n


def merge_cfg_options(cfg: Config, options: Optional[dict]) -> Config:
    """``cfg.merge_from_dict(options)``, plus top-level *variables* that work.

    A config file's top-level string variables (``data_root``, OAA+'s
    ``attention_targets``, ...) are substituted into the dicts that use them when the
    file is parsed, so with plain MMEngine ``--cfg-options data_root=X`` changes
    nothing else and the run silently reads the old path. Here, when a top-level key
    that holds a string is overridden, every other value of the config equal to its
    old string is replaced too (the copies the parser made), and the replacement is
    logged. Values *derived* from a variable (``data_root + '/x'``) are not copies and
    are left alone: override their own keys.
    """
    if not options:
        return cfg
    old = {
        k: cfg.get(k)
        for k in options
        if '.' not in k and isinstance(cfg.get(k, None), str)
    }
    cfg.merge_from_dict(options)
    for key, old_value in old.items():
        new_value = cfg.get(key)
        if not isinstance(new_value, str) or new_value == old_value:
            continue
        body = {k: v for k, v in cfg._cfg_dict.items() if k != key}
        n = _replace_strings(body, old_value, new_value)
        for k, v in body.items():
            cfg[k] = v
        print_log(
            f'--cfg-options {key}={new_value!r}: replaced {n} value(s) of the '
            f'config that were copies of {key}={old_value!r}',
            logger='current', level=logging.INFO)
    return cfg


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Load a config with MMSeg's precedence: CLI > config file > config name.

    ``config`` is a file or a shipped config named with the package scope, e.g.
    ``mmwsss::oaa/oaa_vgg16_voc.py`` (the work dir is then named after the file)."""
    from mmwsss.utils.config_scope import resolve_config
    config = resolve_config(config)
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    merge_cfg_options(cfg, cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg


def _positive_int(cfg: Config, key: str, minimum: int = 1):
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for part in key.split('.'):
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int) or node < minimum:
        raise ValueError(
            f'config key {key}={node!r}: must be an integer >= {minimum} '
            f'(check --cfg-options {key}=...)')


def check_config_basics(cfg: Config, mode: str) -> None:
    """Refuse a merged config whose schedule or loaders cannot be right, naming the
    key: e.g. ``--cfg-options train_cfg.max_epochs=-1`` (MMEngine trains nothing and
    exits 0) or ``train_cfg.max_iters=abc`` (MMEngine fails later in ``int()``)."""
    if mode == 'train':
        train_cfg = cfg.get('train_cfg') or {}
        for key in ('max_epochs', 'max_iters', 'val_interval', 'val_begin'):
            if key in train_cfg:
                _positive_int(cfg, f'train_cfg.{key}',
                              minimum=0 if key == 'val_begin' else 1)
        _positive_int(cfg, 'train_dataloader.batch_size')
        _positive_int(cfg, 'train_dataloader.num_workers', minimum=0)
        lr = ((cfg.get('optim_wrapper') or {}).get('optimizer') or {}).get('lr')
        if lr is not None and (isinstance(lr, bool) or
                               not isinstance(lr, (int, float)) or lr < 0):
            raise ValueError(f'config key optim_wrapper.optimizer.lr={lr!r}: must '
                             'be a number >= 0')
        hooks = cfg.get('default_hooks') or {}
        if isinstance(hooks.get('checkpoint'), dict):
            _positive_int(cfg, 'default_hooks.checkpoint.interval', minimum=-1)
    for split in ('val', 'test'):
        if cfg.get(f'{split}_dataloader'):
            _positive_int(cfg, f'{split}_dataloader.batch_size')
            _positive_int(cfg, f'{split}_dataloader.num_workers', minimum=0)


def apply_resume(cfg: Config, resume: Optional[str]) -> Config:
    """``tools/train.py --resume [CHECKPOINT]`` (MMPretrain's semantics).

    * ``--resume`` (``resume='auto'``): resume the latest checkpoint of ``cfg.work_dir``;
      ``load_from`` is then ignored: with MMEngine's precedence a ``load_from`` in the
      config (or ``--cfg-options``) would otherwise be *resumed* instead -- e.g.
      another run's finished checkpoint, training nothing. Without any checkpoint in
      the work dir the run starts from the beginning, from ``load_from`` as initial
      weights when one is set (a fine-tuning run can always be started with
      ``--resume``), and says so.
    * ``--resume CHECKPOINT``: resume that file.
    * ``None``: no resume (``load_from`` keeps its meaning: initial weights).

    The file that will be resumed (or loaded) is logged before the Runner is built.
    """
    if not resume:
        cfg.resume = False
        return cfg
    from mmengine.runner import find_latest_checkpoint
    if resume == 'auto':
        latest = (find_latest_checkpoint(cfg.work_dir)
                  if osp.isdir(cfg.work_dir) else None)
        if latest is None:
            cfg.resume = False
            start = (f'from load_from={cfg.load_from!r} (initial weights)'
                     if cfg.get('load_from') else 'from the beginning')
            print_log(
                f'--resume: the work dir {cfg.work_dir!r} has no checkpoint yet: '
                f'training starts {start}', logger='current',
                level=logging.WARNING)
            return cfg
        if cfg.get('load_from'):
            print_log(
                f'--resume: ignoring load_from={cfg.load_from!r} (initial weights); '
                f'resuming the latest checkpoint of the work dir {cfg.work_dir!r}',
                logger='current', level=logging.WARNING)
        cfg.load_from = None
        cfg.resume = True
        print_log(f'--resume: resuming {latest}', logger='current',
                  level=logging.INFO)
        return cfg
    if not osp.isfile(resume):
        raise FileNotFoundError(
            f'--resume {resume!r}: no such checkpoint file (use --resume without a '
            'path to resume the latest checkpoint of the work dir)')
    cfg.resume = True
    cfg.load_from = resume
    print_log(f'--resume: resuming {resume}', logger='current', level=logging.INFO)
    return cfg


def check_load_from(cfg: Config, config_path: Optional[str] = None) -> None:
    """Refuse a ``load_from`` that names a local file that does not exist.

    MMEngine only finds out after building the runner, with a message that names
    neither the config key nor the fix. URLs (``scheme://``) are left to MMEngine
    (no download happens in mmwsss's own configs)."""
    path = cfg.get('load_from')
    if not path or '://' in str(path) or osp.isfile(path):
        return
    where = f' of {config_path}' if config_path else ''
    raise FileNotFoundError(
        f'load_from={path!r}{where}: no such checkpoint file (the initial weights of '
        'this run). Train the run it names first, or pass --cfg-options '
        'load_from=<checkpoint> (load_from=None to start from scratch)')


def enable_amp(cfg: Config) -> None:
    """``--amp``: switch ``optim_wrapper`` to MMEngine's AmpOptimWrapper."""
    if not torch.cuda.is_available():
        raise RuntimeError(
            '--amp needs a CUDA device (MMEngine\'s AmpOptimWrapper is GPU-only); '
            'drop --amp for CPU runs')
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.',
                  logger='current', level=logging.WARNING)
        return
    if optim_wrapper != 'OptimWrapper':
        raise ValueError(
            '--amp is only supported when optim_wrapper.type is OptimWrapper, '
            f'got {optim_wrapper!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def _replace_syncbn(node) -> int:
    n = 0
    if isinstance(node, dict):
        for k, v in node.items():
            if k == 'norm_cfg' and isinstance(v, dict) and v.get('type') in (
                    'SyncBN', 'MMSyncBN'):
                v['type'] = 'BN'
                n += 1
            else:
                n += _replace_syncbn(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            n += _replace_syncbn(v)
    return n


def _init_gloo(launcher: str) -> None:
    """Initialise a gloo process group from the launcher's environment."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        return
    env = os.environ
    if launcher == 'pytorch':
        rank, world = int(env['RANK']), int(env['WORLD_SIZE'])
    elif launcher == 'slurm':
        rank, world = int(env['SLURM_PROCID']), int(env['SLURM_NTASKS'])
        env.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in env:
            import subprocess
            node_list = env['SLURM_NODELIST']
            env['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {node_list} | head -n1')
        env['RANK'], env['WORLD_SIZE'] = str(rank), str(world)
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
    elif launcher == 'mpi':
        rank = int(env['OMPI_COMM_WORLD_RANK'])
        world = int(env['OMPI_COMM_WORLD_SIZE'])
        env.setdefault('MASTER_ADDR', '127.0.0.1')
        env.setdefault('MASTER_PORT', '29500')
        env['RANK'], env['WORLD_SIZE'] = str(rank), str(world)
        env['LOCAL_RANK'] = env.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
    else:
        raise ValueError(f'unknown launcher {launcher!r}')
    torch_dist.init_process_group(backend='gloo', rank=rank, world_size=world)


def setup_device(cfg: Config) -> None:
    """Make a config runnable on this machine.

    Without CUDA and with a distributed launcher: use the gloo backend (MMEngine's
    launcher code always calls ``torch.cuda.set_device``), wrap the model with
    :class:`~mmwsss.models.wrappers.DeviceAwareDistributedDataParallel`, and turn
    SyncBN into BN (SyncBN has no CPU kernel). A CUDA machine is left untouched.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    env_cfg = dict(cfg.get('env_cfg') or {})
    env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    cfg.env_cfg = env_cfg
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='mmwsss.DeviceAwareDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    n = _replace_syncbn(cfg.get('model', {}))
    if n:
        warnings.warn(f'no CUDA: {n} SyncBN norm_cfg(s) replaced by BN for a '
                      'CPU distributed run')
    _init_gloo(launcher)


def build_runner(cfg: Config):
    from mmengine.runner import Runner

    from mmwsss.registry import RUNNERS
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def teardown_distributed() -> None:
    """Destroy the process group at the end of a run.

    Without it, a gloo run can abort at interpreter exit ("terminate called without an
    active exception", SIGABRT) while its communication threads are torn down. Call it
    after the last reference to the Runner is gone (see :func:`run`): the DDP wrapper
    holds the process group, which otherwise outlives ``destroy_process_group`` and is
    destroyed during interpreter finalisation.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        gc.collect()
        torch_dist.destroy_process_group()
        gc.collect()


class CheckpointMismatchError(RuntimeError):
    """A checkpoint that does not fit the model it is evaluated with."""


def _listed(keys, n: int = 8) -> str:
    keys = list(keys)
    return ', '.join(keys[:n]) + (f' ... ({len(keys)} in all)' if len(keys) > n
                                  else '')


def load_checkpoint_strict(runner, path: str) -> dict:
    """Load ``path`` into the runner's model for a test / export run, **strictly**.

    MMEngine loads ``load_from`` non-strictly (mismatches are only logged), so a
    checkpoint of another model -- e.g. a 20-class head for an 8-class config -- used to
    give CAMs and metrics of a randomly initialised head with exit 0. Here every weight
    of the evaluated model must come from the checkpoint with the same shape, and the
    checkpoint may hold no other weight; otherwise :class:`CheckpointMismatchError`
    names the file and the keys. A file that is not a checkpoint is refused with its
    path. Wrappers (DDP, the TTA model) are unwrapped: the checkpoint holds the
    evaluated model itself.
    """
    from mmengine.runner.checkpoint import (_load_checkpoint,
                                            _load_checkpoint_to_model)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    try:
        checkpoint = _load_checkpoint(path, map_location='cpu')
    except Exception as e:  # noqa: BLE001  (any decode error: not a checkpoint)
        raise CheckpointMismatchError(
            f'{path}: not a readable checkpoint ({type(e).__name__}: {e})') from e
    state = checkpoint.get('state_dict', checkpoint) if isinstance(
        checkpoint, dict) else None
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(
            f'{path}: not a model checkpoint (no state_dict of tensors)')
    from mmwsss.utils.model_wrappers import unwrap_model
    model = unwrap_model(runner.model)
    ckpt = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    from mmwsss.models.backbones.state_dict_utils import state_dict_diff
    missing, unexpected, shapes = state_dict_diff(ckpt, model.state_dict())
    shapes = [f'{k} {a} vs {b}' for k, a, b in shapes]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f'shape mismatch (checkpoint vs model): {_listed(shapes)}')
        if missing:
            parts.append(f'weights of the model missing from the checkpoint: '
                         f'{_listed(missing)}')
        if unexpected:
            parts.append(f'weights of the checkpoint the model does not have: '
                         f'{_listed(unexpected)}')
        raise CheckpointMismatchError(
            f'checkpoint {path} does not fit the model of this config '
            f'({type(model).__name__}): ' + '; '.join(parts) + '. Evaluate it with '
            'the config it was trained with (or one with the same model).')
    runner.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    _load_checkpoint_to_model(model, checkpoint, strict=True)
    runner._has_loaded = True
    runner.logger.info(f'Load checkpoint from {path} (every weight matched)')
    return checkpoint


def run(cfg: Config, mode: str):
    """Set up the device, build the Runner, run ``train`` or ``test``, tear down.

    Returns what the Runner returns (the metrics dict for ``test``)."""
    if mode not in ('train', 'test'):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    check_config_basics(cfg, mode)
    setup_device(cfg)
    runner = build_runner(cfg)
    if mode == 'test' and cfg.get('load_from'):
        load_checkpoint_strict(runner, cfg.load_from)
    result = getattr(runner, mode)()
    # release the Runner (and its DDP wrapper, which holds the gloo process group)
    # while the interpreter is fully alive, then destroy the group
    del runner
    teardown_distributed()
    return result


def build_split_dataset(config: str, split: str, cfg_options=None):
    """Build ``cfg[f'{split}_dataloader'].dataset`` of a config file without its
    pipeline (only the file lists and paths are read): the image list of the
    offline tools (seed evaluation, pseudo labels)."""
    from mmwsss.utils.config_scope import resolve_config
    config = resolve_config(config)
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = merge_cfg_options(Config.fromfile(config), cfg_options)
    key = f'{split}_dataloader'
    if key not in cfg or not cfg[key] or 'dataset' not in cfg[key]:
        raise KeyError(f'config {config!r} has no `{key}.dataset`; pick another '
                       '--split')
    from mmwsss.registry import DATASETS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds_cfg = cfg[key].dataset.copy()
    ds_cfg['pipeline'] = []
    return DATASETS.build(ds_cfg)
