"""Compare WSSS seed methods on the toy dataset: runs, leaderboard and picture grid.

The library of ``tools/analysis/compare_methods.py``. A *method* is a config with a
top-level ``method`` dict (docs/extending.md, section '7. A leaderboard row')::

    method = dict(name='OAA+', seeds='cams',
                  requires=dict(attention_targets=('oaa_r18_toy.py', 'oaa_maps')))

* ``name``: the leaderboard row;
* ``seeds``: ``'cams'`` (the CAMs ``tools/export_cams.py`` exports from the trained
  classifier) or the name of a folder of CAM files the training run itself writes into
  its work dir (OAA's ``oaa_maps``);
* ``requires`` (optional): ``{config key: (config, folder)}``: the run needs the folder
  of the *same seed's* run of that config (relative to this config's folder), passed as
  ``--cfg-options <config key>=<that run>/<folder>``; that run goes first. The folder
  :data:`LAST_CHECKPOINT` names the checkpoint that run ended with (e.g.
  ``load_from=('cam_r18_toy.py', 'last_checkpoint')``: fine-tune the trained
  classifier of the same seed).

``method = None`` (or no ``method``) marks a config that is not a method (a config
inheriting from a method's config, e.g. an ablation, sets it).

One (config, seed) run, in ``<work>/runs/<config stem>/seed<s>`` (the training work
dir), is four steps with the standard tools, each a subprocess whose output goes to
``<run>/log.txt``: training (``--resume``), the seeds (CAM export, or the folder the
training wrote), the seed evaluation (``seeds.json``) and the pseudo labels with the
config's ``pseudo_label_rule`` (``pseudo.json``). A finished step is recorded in
``<run>/steps.json`` and not run again; a finished run leaves ``<run>/result.json``
(written last) and is skipped.
"""
import contextlib
import json
import os
import os.path as osp
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from glob import glob
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmwsss.utils.cli import ToolError
from mmwsss.utils.io import atomic_write

__all__ = [
    'MethodSpec', 'Job', 'RunContext', 'RunFailed', 'load_method',
    'discover_methods', 'resolve_config_arg', 'resolve_baseline', 'plan_methods',
    'make_jobs', 'prepare_data', 'data_root_options', 'run_job', 'execute_jobs',
    'read_step_times', 'aggregate', 'build_leaderboard', 'format_leaderboard_md',
    'leaderboard_table', 'draw_grid', 'grid_items', 'write_results', 'child_env',
    'run_command', 'stop_running_commands', 'FAST_SCHEDULE', 'LOG_EVERY_ITERATION',
    'FALLBACK_RULE', 'LEADERBOARD_JSON', 'LEADERBOARD_MD', 'GRID_PNG',
    'LAST_CHECKPOINT', 'required_path'
]

#: The ``--fast`` schedule (2 epochs; every toy method config trains with it: OAA's
#: hook accumulates from the second epoch, start_epoch=1)
FAST_SCHEDULE = ('train_cfg.max_epochs=2', 'param_scheduler.0.end=2',
                 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2')
#: Logged with every training run: each iteration with its own time (no smoothing
#: window), for the step time. Logging only; the training is the same.
LOG_EVERY_ITERATION = ('default_hooks.logger.interval=1',
                       'log_processor.window_size=1')
#: The pseudo-label rule of a method config without ``pseudo_label_rule``
#: (``tools/make_pseudo_labels.py`` has no default: it stops without one): the seed
#: rule itself, a constant background score at the run's best seed threshold.
FALLBACK_RULE = 'ThresholdBackground'
#: the outputs in the work dir
LEADERBOARD_JSON = 'leaderboard.json'
LEADERBOARD_MD = 'leaderboard.md'
GRID_PNG = 'grid.png'
#: the metrics of a run aggregated over seeds
METRICS = ('seed_miou', 'best_threshold', 'attn_recall', 'attn_noise',
           'pseudo_miou', 'step_time_rel', 'step_time_s', 'wall_time_s')


# ----------------------------------------------------------------- methods
@dataclass
class MethodSpec:
    """A method config: its ``method`` dict, checked, with absolute paths."""
    config: str
    name: str
    seeds: str
    #: config key -> (absolute config path, folder of that config's run)
    requires: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    #: the config's ``pseudo_label_rule`` (None: :data:`FALLBACK_RULE`)
    pseudo_label_rule: Optional[dict] = None

    @property
    def stem(self) -> str:
        return osp.splitext(osp.basename(self.config))[0]

    @property
    def declaration(self) -> dict:
        """What identifies the method in a run's settings (``run.json``)."""
        return dict(
            name=self.name, seeds=self.seeds,
            requires={k: [osp.basename(c), f] for k, (c, f) in
                      sorted(self.requires.items())})


def _has_key(cfg, key: str) -> bool:
    node = cfg
    for part in key.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit():
            if int(part) >= len(node):
                return False
            node = node[int(part)]
        elif hasattr(node, 'keys') and part in node:
            node = node[part]
        else:
            return False
    return True


def _folder_name(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f'{where}={value!r}: must be a folder name')
    norm = osp.normpath(value)
    if osp.isabs(value) or norm.startswith('..'):
        raise ToolError(f'{where}={value!r}: must be a folder inside the run\'s work '
                        "dir (e.g. 'oaa_maps'), not an absolute or parent path")
    return norm


def load_method(config: str) -> Optional[MethodSpec]:
    """The :class:`MethodSpec` of a config file; None if it declares no method
    (no ``method`` key, or ``method = None``). A malformed ``method`` is a
    :class:`ToolError` naming the config, the key and the fix."""
    import mmwsss  # noqa: F401  (the mmwsss:: scope before MMEngine reads a config)
    from mmengine.config import Config
    config = osp.realpath(config)  # one name for a config (.mim/configs links)
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    method = cfg.get('method', None)
    if method is None:
        return None
    where = f'config {config}: method'
    if not hasattr(method, 'keys'):
        raise ToolError(f'{where}={method!r}: must be a dict, e.g. method = '
                        "dict(name='CAM', seeds='cams'), or None (not a method)")
    unknown = sorted(set(method.keys()) - {'name', 'seeds', 'requires', '_delete_'})
    if unknown:
        raise ToolError(f'{where}: unknown key(s) {unknown}; a method dict has name, '
                        'seeds and optionally requires (docs/extending.md)')
    name = method.get('name')
    if not isinstance(name, str) or not name.strip():
        raise ToolError(f'{where}.name={name!r}: must be a non-empty string (the '
                        'leaderboard row)')
    seeds = _folder_name(method.get('seeds'), f'{where}.seeds')
    requires = {}
    for key, value in (method.get('requires') or {}).items():
        w = f'{where}.requires.{key}'
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(isinstance(v, str) for v in value)):
            raise ToolError(f'{w}={value!r}: must be a pair (config, folder), e.g. '
                            "('oaa_r18_toy.py', 'oaa_maps')")
        req = value[0] if osp.isabs(value[0]) else osp.join(
            osp.dirname(config), value[0])
        if not osp.isfile(req):
            raise ToolError(f'{w}: the config {req!r} does not exist (a path '
                            'relative to the folder of this config)')
        if not _has_key(cfg, key):
            raise ToolError(
                f'{w}: {key!r} is not a key of the config; name the config '
                'variable (e.g. attention_targets) or the dotted key the folder '
                'is passed to with --cfg-options')
        requires[key] = (osp.realpath(req), _folder_name(value[1], w))
    rule = cfg.get('pseudo_label_rule', None)
    return MethodSpec(
        config=config, name=name.strip(), seeds=seeds, requires=requires,
        pseudo_label_rule=dict(rule.to_dict() if hasattr(rule, 'to_dict') else
                               rule) if rule else None)


def discover_methods(config_dir: str) -> List[MethodSpec]:
    """The method configs of a folder (``*.py``, sorted by name)."""
    if not osp.isdir(config_dir):
        raise FileNotFoundError(f'config folder {config_dir!r} does not exist')
    specs = []
    for path in sorted(glob(osp.join(config_dir, '*.py'))):
        spec = load_method(path)
        if spec is not None:
            specs.append(spec)
    return specs


def resolve_config_arg(item: str, config_dir: str) -> str:
    """A ``--configs`` item: a config file, or a name in ``config_dir``."""
    for cand in (item, osp.join(config_dir, item)):
        if osp.isfile(cand):
            return osp.realpath(cand)
    raise FileNotFoundError(
        f'--configs {item!r}: no such config file (nor {osp.join(config_dir, item)})')


def _method_of(path: str, cache: Dict[str, Optional[MethodSpec]],
               why: str) -> MethodSpec:
    path = osp.realpath(path)
    if path not in cache:
        cache[path] = load_method(path)
    if cache[path] is None:
        raise ToolError(
            f'{path} ({why}) declares no method (no `method` dict, or method = '
            "None): add e.g. method = dict(name='CAM', seeds='cams') to it "
            '(docs/extending.md)')
    return cache[path]


def resolve_baseline(baseline: str, specs: Sequence[MethodSpec],
                     config_dir: str,
                     cache: Dict[str, Optional[MethodSpec]]) -> MethodSpec:
    """``--baseline``: a method name, a config name / stem or a config path; looked
    up among ``specs`` first, then among the methods of ``config_dir``."""
    def match(spec):
        return baseline in (spec.name, spec.stem, osp.basename(spec.config)) or (
            osp.isfile(baseline) and osp.realpath(baseline) == spec.config)

    for spec in specs:
        if match(spec):
            return spec
    if osp.isfile(baseline):
        return _method_of(baseline, cache, '--baseline')
    others = []
    for path in sorted(glob(osp.join(config_dir, '*.py'))):
        path = osp.realpath(path)
        if path not in cache:
            cache[path] = load_method(path)
        if cache[path] is not None:
            if match(cache[path]):
                return cache[path]
            others.append(cache[path].name)
    known = sorted({s.name for s in specs} | set(others))
    raise ToolError(f'--baseline {baseline!r}: no method of that name or config '
                    f'(methods: {", ".join(known) or "none"}); name one of them or '
                    'a method config file')


def plan_methods(selected: Sequence[MethodSpec],
                 baseline: Optional[MethodSpec] = None,
                 cache: Optional[Dict[str, Optional[MethodSpec]]] = None
                 ) -> Tuple[List[MethodSpec], List[Tuple[MethodSpec, str]]]:
    """Order the methods so that a required config comes before the configs that
    need it, adding the required configs (and the baseline) that are not listed.

    Returns:
        (the ordered methods, [(an added method, why)]).
    """
    cache = {} if cache is None else cache
    for spec in selected:
        cache.setdefault(spec.config, spec)
    listed = {s.config for s in selected}
    order, added, done, visiting = [], [], set(), []

    def visit(spec: MethodSpec, why: Optional[str]):
        if spec.config in done:
            return
        if spec.config in visiting:
            cycle = visiting[visiting.index(spec.config):] + [spec.config]
            raise ToolError('method.requires forms a cycle: ' + ' -> '.join(
                osp.basename(c) for c in cycle) + '; a run cannot need itself')
        if why is not None and spec.config not in listed:
            listed.add(spec.config)
            added.append((spec, why))
        visiting.append(spec.config)
        for key, (req, folder) in sorted(spec.requires.items()):
            why_req = (f'required by {spec.name} ({osp.basename(spec.config)}: '
                       f'method.requires.{key})')
            visit(_method_of(req, cache, why_req), why_req)
        visiting.pop()
        done.add(spec.config)
        order.append(spec)

    if baseline is not None and baseline.config not in listed:
        visit(baseline, 'the baseline of the relative step time (--baseline)')
    for spec in selected:
        visit(spec, None)
    stems = {}
    for spec in order:
        if spec.stem in stems:
            raise ToolError(f'two configs named {spec.stem}.py ({stems[spec.stem]}, '
                            f'{spec.config}): their runs would share a folder; '
                            'rename one')
        stems[spec.stem] = spec.config
    return order, added


# -------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One (config, seed) run."""
    spec: MethodSpec
    seed: int
    run_dir: str
    #: config key -> (the key of the job whose folder it needs, that folder)
    needs: Dict[str, Tuple[Tuple[str, int], str]] = field(default_factory=dict)

    @property
    def key(self) -> Tuple[str, int]:
        return (self.spec.stem, self.seed)

    @property
    def label(self) -> str:
        return f'{self.spec.stem}/seed{self.seed}'

    @property
    def deps(self) -> List[Tuple[str, int]]:
        return [k for k, _ in self.needs.values()]


def run_dir_of(work_dir: str, stem: str, seed: int) -> str:
    return osp.join(osp.abspath(work_dir), 'runs', stem, f'seed{seed}')


def make_jobs(methods: Sequence[MethodSpec], seeds: Sequence[int],
              work_dir: str) -> List[Job]:
    """The jobs, seed by seed (a whole comparison of the first seed comes first),
    in the order of ``methods`` (requirements first, :func:`plan_methods`)."""
    by_config = {m.config: m for m in methods}
    jobs = []
    for seed in seeds:
        for spec in methods:
            needs = {}
            for key, (req, folder) in spec.requires.items():
                dep = by_config[req].stem
                needs[key] = ((dep, seed),
                              osp.join(run_dir_of(work_dir, dep, seed), folder))
            jobs.append(Job(spec, seed, run_dir_of(work_dir, spec.stem, seed),
                            needs))
    return jobs


# -------------------------------------------------------------------- data
def data_root_options(data_root: str) -> List[str]:
    """The data root for every tool (as tools/demo.sh passes it)."""
    return [f'{split}_dataloader.dataset.data_root={data_root}'
            for split in ('train', 'val', 'test')]


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ToolError(f'{path}: not a readable JSON file ({e}); delete it (it is '
                        'made again) or the run folder it belongs to') from e


def _write_json(path: str, data) -> None:
    with atomic_write(path, 'w') as f:
        json.dump(data, f, indent=2)
        f.write('\n')


def prepare_data(data_root: str, work_dir: str, fresh: bool = False,
                 generate: Optional[dict] = None,
                 log: Callable[[str], None] = print) -> Tuple[str, dict]:
    """Make sure the toy data exists and the work dir's runs were made on it.

    * ``data_root`` without ``toy_meta.json``: the toy dataset is generated there
      (``make_toy_dataset(data_root, **generate)``) and the tool says so.
    * a toy dataset made before the GAIN_ext strong subsets existed (its
      ``toy_meta.json`` has no ``strong_subsets``) gets them added
      (:func:`~mmwsss.datasets.toy_generator.add_strong_subsets`; the images are the
      same).
    * ``<work_dir>/toy_meta.json`` is the copy of the data's ``toy_meta.json`` made at
      the first run; other data stops the tool (results of two datasets must not be
      mixed) unless ``fresh``, which deletes ``<work_dir>/runs``. A copy that only
      lacks ``strong_subsets`` is the same data (runs made before the lists existed)
      and is updated.

    Returns:
        (the absolute data root, the content of its toy_meta.json).
    """
    data_root = osp.abspath(data_root)
    meta_path = osp.join(data_root, 'toy_meta.json')
    if not osp.isfile(meta_path):
        from mmwsss.datasets.toy_generator import make_toy_dataset
        kwargs = dict(generate or {})
        made = ', '.join(f'{k}={v}' for k, v in kwargs.items())
        log(f'{data_root} has no toy_meta.json: generating the toy dataset there '
            f'(make_toy_dataset({made or "default parameters"}))')
        make_toy_dataset(data_root, **kwargs)
    meta = _read_json(meta_path)
    if 'generator_version' in meta and 'strong_subsets' not in meta:
        from mmwsss.datasets.toy_generator import add_strong_subsets
        meta = add_strong_subsets(data_root)
        log(f'{data_root}: added the GAIN_ext strong-subset lists of the toy '
            f"generator ({', '.join(meta['strong_subsets']['files'])}); the images "
            'are unchanged')
    work_dir = osp.abspath(work_dir)
    recorded = osp.join(work_dir, 'toy_meta.json')
    runs = osp.join(work_dir, 'runs')
    if fresh:
        if osp.isdir(runs):
            log(f'--fresh: deleting {runs}')
            shutil.rmtree(runs)
    elif osp.isfile(recorded):
        old = _read_json(recorded)
        if 'strong_subsets' not in old and 'strong_subsets' in meta and \
                old == {k: v for k, v in meta.items() if k != 'strong_subsets'}:
            log(f'{recorded}: the runs were made on this toy data before it had '
                'the GAIN_ext strong-subset lists (same images): recording them')
            _write_json(recorded, meta)
        elif old != meta:
            keys = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            diff = ', '.join(f'{k}: {old.get(k)!r} -> {meta.get(k)!r}'
                             for k in keys)
            raise ToolError(
                f'{work_dir} holds runs made on other toy data than {data_root} '
                f'({recorded} vs {meta_path}: {diff}); results of two datasets '
                'are not mixed: pass another --work-dir, or --fresh to delete '
                f'{runs} and start over')
    elif osp.isdir(runs) and os.listdir(runs):
        raise ToolError(
            f'{work_dir} holds runs but not the toy_meta.json of their data '
            f'({recorded} is missing), so they cannot be checked against '
            f'{meta_path}: pass another --work-dir, or --fresh to delete {runs} and '
            'start over')
    if fresh or not osp.isfile(recorded):
        _write_json(recorded, meta)
    return data_root, meta


# ----------------------------------------------------------------- running
class RunFailed(ToolError):
    """A step of a run ended with a non-zero exit status."""

    def __init__(self, job: Job, step: str, cmd: Sequence[str], code: int,
                 log_path: str):
        self.job, self.step, self.cmd, self.code = job, step, list(cmd), code
        self.log_path = log_path
        super().__init__(
            f'run {job.label} failed at its {step} step (exit status {code}; the '
            f'command and the last lines of its log {log_path} are shown above). '
            'Fix the cause and run the same command again: finished runs and '
            'steps are kept')


_RUNNING = set()
_RUNNING_LOCK = threading.Lock()
#: set on Ctrl-C: no further step starts
_STOP = threading.Event()


def run_command(cmd: Sequence[str], log_path: str, env: Dict[str, str]) -> int:
    """Run ``cmd``, appending its stdout and stderr to ``log_path``; its exit
    status. (Tests replace this function.)"""
    with open(log_path, 'a') as log:
        log.write(f'\n$ {shlex.join(cmd)}\n')
        log.flush()
        with _RUNNING_LOCK:  # not after stop_running_commands
            if _STOP.is_set():
                return -signal.SIGTERM
            # its own session: Ctrl-C in the terminal reaches this process only,
            # which stops the tools (stop_running_commands)
            proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
            _RUNNING.add(proc)
        try:
            return proc.wait()
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)


def stop_running_commands() -> None:
    """Terminate the subprocesses :func:`run_command` started, and start no other
    step (Ctrl-C)."""
    with _RUNNING_LOCK:
        _STOP.set()
        procs = list(_RUNNING)
    for proc in procs:  # each leads its own process group: the tool and its workers
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def child_env(workers: int, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of the tools: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` =
    ``max(1, cpu_count // workers)`` unless already set."""
    env = dict(os.environ if base is None else base)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    for key in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env.setdefault(key, threads)
    return env


@dataclass
class RunContext:
    """What every run shares."""
    work_dir: str
    data_root: str
    tools_dir: str
    train_options: List[str] = field(default_factory=list)
    #: runs at a time (recorded with the results: step times of runs made in
    #: parallel share the CPUs)
    workers: int = 1
    python: str = sys.executable
    env: Dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = print

    def tool(self, name: str) -> List[str]:
        return [self.python, osp.join(self.tools_dir, name)]


def _settings(job: Job, ctx: RunContext) -> dict:
    return dict(config=osp.basename(job.spec.config), method=job.spec.declaration,
                seed=job.seed, train_options=list(ctx.train_options))


def _check_settings(job: Job, ctx: RunContext) -> None:
    """``<run>/run.json`` records how the run was made; other settings for a run
    that has begun (a finished step, a checkpoint) stop the tool: its results would
    silently be reused, or its training resumed with another schedule. A run that
    has not begun takes the new settings (e.g. after a typo in --cfg-options)."""
    path = osp.join(job.run_dir, 'run.json')
    now = _settings(job, ctx)
    begun = any(osp.isfile(osp.join(job.run_dir, name)) for name in (
        'steps.json', 'result.json', 'last_checkpoint'))
    if osp.isfile(path) and begun:
        old = _read_json(path)
        if old != now:
            keys = sorted(k for k in set(old) | set(now) if old.get(k) != now.get(k))
            diff = '; '.join(f'{k}: {old.get(k)!r} -> {now.get(k)!r}' for k in keys)
            raise ToolError(
                f'{path}: the run {job.label} was made with other settings ({diff}); '
                'pass the same options as before, another --work-dir, or --fresh '
                'to delete the runs and start over')
    else:
        _write_json(path, now)


def last_checkpoint(run_dir: str) -> str:
    marker = osp.join(run_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        raise ToolError(f'{run_dir}: the training wrote no checkpoint '
                        f'({marker} is missing); check its log {run_dir}/log.txt')
    with open(marker) as f:
        ckpt = f.read().strip()
    if not osp.isabs(ckpt) and not osp.isfile(ckpt):
        ckpt = osp.join(run_dir, osp.basename(ckpt))
    if not osp.isfile(ckpt):
        raise ToolError(f'{marker} names {ckpt!r}, which does not exist; delete '
                        f'{osp.join(run_dir, "steps.json")} to train again')
    return ckpt


def read_step_times(run_dir: str) -> List[float]:
    """The training iteration times of a run, from MMEngine's scalar logs
    (``<run_dir>/<timestamp>/vis_data/scalars.json``, one JSON object a line; one
    timestamp folder per training process, several when a run was resumed).

    A training entry has ``iter`` and ``time`` (the seconds of the logged iteration,
    data loading included, as IterTimerHook measures it; validation entries have no
    ``iter``). The runs log every iteration with its own time
    (:data:`LOG_EVERY_ITERATION`). The first logged iteration of each process is
    left out: it includes one-off costs (lazy initialisation of the model's kernels
    and memory, the first batches of the data loader; about twice a later step on
    the toy runs).
    """
    times = []
    for path in sorted(glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))):
        this = []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    raise ToolError(f'{path}, line {lineno}: not JSON ({e}); '
                                    'MMEngine writes one JSON object a line') from e
                if isinstance(rec, dict) and 'iter' in rec and 'time' in rec:
                    this.append(float(rec['time']))
        times.extend(this[1:])
    return times


def _mean_or_none(values: Sequence[float]) -> Optional[float]:
    return float(np.mean(values)) if len(values) else None


def _do_step(job: Job, ctx: RunContext, steps: dict, name: str,
             cmd: List[str]) -> None:
    log_path = osp.join(job.run_dir, 'log.txt')
    if _STOP.is_set():
        raise ToolError(f'{job.label}: stopped before its {name} step')
    ctx.log(f'[{job.label}] {name}: {shlex.join(cmd)}')
    start = time.time()
    code = run_command(cmd, log_path, ctx.env)
    seconds = time.time() - start
    if code != 0:
        raise RunFailed(job, name, cmd, code, log_path)
    steps[name] = dict(seconds=round(seconds, 3), command=shlex.join(cmd))
    _write_json(osp.join(job.run_dir, 'steps.json'), steps)
    ctx.log(f'[{job.label}] {name} done in {seconds:.1f} s')


#: ``method.requires`` folder name for the final checkpoint of the required run (the
#: file its ``last_checkpoint`` names, as MMEngine writes it)
LAST_CHECKPOINT = 'last_checkpoint'


def required_path(path: str) -> str:
    """The path a ``requires`` entry passes: ``<run>/last_checkpoint`` resolves to the
    checkpoint it names; another folder is passed as it is."""
    if osp.basename(path) != LAST_CHECKPOINT:
        return path
    if not osp.isfile(path):
        return ''
    with open(path) as f:
        ckpt = f.read().strip()
    if ckpt and not osp.isabs(ckpt):
        ckpt = osp.join(osp.dirname(path), ckpt)
    return ckpt if ckpt and osp.isfile(ckpt) else ''


def _count_cam_files(folder: str) -> int:
    return sum(1 for n in os.listdir(folder) if n.endswith('.npz')) \
        if osp.isdir(folder) else 0


def run_job(job: Job, ctx: RunContext) -> dict:
    """Run (or finish, or skip) one (config, seed) run; its result (``result.json``).

    The runs it needs (``job.needs``) must have finished."""
    spec, run = job.spec, job.run_dir
    result_path = osp.join(run, 'result.json')
    os.makedirs(run, exist_ok=True)
    _check_settings(job, ctx)
    if osp.isfile(result_path):
        ctx.log(f'[{job.label}] finished before ({result_path}): skipped')
        return _read_json(result_path)
    steps_path = osp.join(run, 'steps.json')
    steps = _read_json(steps_path) if osp.isfile(steps_path) else {}
    droot = data_root_options(ctx.data_root)
    needs = []
    for key, (dep, folder_path) in sorted(job.needs.items()):
        where = (f'{job.label} needs {folder_path} (method.requires.{key} of '
                 f'{osp.basename(spec.config)})')
        if osp.basename(folder_path) == LAST_CHECKPOINT:
            ckpt = required_path(folder_path)
            if not ckpt:
                raise ToolError(
                    f'{where}, which names no checkpoint file: the run '
                    f'{dep[0]}/seed{dep[1]} did not finish its training')
            needs.append(f'{key}={ckpt}')
            continue
        if not _count_cam_files(folder_path):
            raise ToolError(
                f'{where}, which holds no CAM file: the '
                f'run {dep[0]}/seed{dep[1]} did not write it')
        needs.append(f'{key}={folder_path}')
    config = spec.config

    # 1. training (resumes an interrupted one)
    if 'train' not in steps:
        _do_step(job, ctx, steps, 'train', ctx.tool('train.py') + [
            config, '--work-dir', run, '--resume', '--cfg-options',
            f'randomness.seed={job.seed}', *droot, *needs, *LOG_EVERY_ITERATION,
            *ctx.train_options])
    # 2. seeds
    if spec.seeds == 'cams':
        seed_dir = osp.join(run, 'cams')
        if 'seeds' not in steps or not osp.isdir(seed_dir):
            _do_step(job, ctx, steps, 'seeds', ctx.tool('export_cams.py') + [
                config, last_checkpoint(run), '--out', seed_dir, '--work-dir',
                osp.join(run, 'export'), '--cfg-options', *droot, *needs])
    else:
        seed_dir = osp.join(run, spec.seeds)
        if not _count_cam_files(seed_dir):
            raise ToolError(
                f'{job.label}: {seed_dir} holds no CAM file: method.seeds='
                f'{spec.seeds!r} of {osp.basename(config)} must name a folder the '
                "training writes into its work dir (e.g. OAAHook's export_dir), or "
                "be 'cams' (tools/export_cams.py)")
    # 3. seed evaluation
    seeds_json = osp.join(run, 'seeds.json')
    if 'eval' not in steps or not osp.isfile(seeds_json):
        _do_step(job, ctx, steps, 'eval', ctx.tool('eval_seeds.py') + [
            seed_dir, config, '--no-progress', '--out', seeds_json,
            '--cfg-options', *droot])
    seeds = _read_json(seeds_json)
    # 4. pseudo labels with the method's rule
    pseudo_json = osp.join(run, 'pseudo.json')
    rule_args, rule_source = [], 'config'
    if spec.pseudo_label_rule is None:
        rule_source = 'fallback'
        rule_args = ['--rule', FALLBACK_RULE, '--rule-options',
                     f"threshold={seeds['best_threshold']}"]
    if 'pseudo' not in steps or not osp.isfile(pseudo_json):
        # degenerate labels (e.g. all background after a very short schedule) are a
        # result of the method, reported in the leaderboard, not a stop
        _do_step(job, ctx, steps, 'pseudo', ctx.tool('make_pseudo_labels.py') + [
            config, seed_dir, '--out', osp.join(run, 'pseudo'), '--eval', '--json',
            pseudo_json, '--workers', '1', '--no-progress', '--allow-all-ignored',
            *rule_args, '--cfg-options', *droot])
    pseudo = _read_json(pseudo_json)

    times = read_step_times(run)
    quality = seeds.get('attention_quality') or {}
    warnings = [f'seeds: {w}' for w in seeds.get('warnings', [])]
    if pseudo.get('warning'):
        warnings.append(f"pseudo labels: {pseudo['warning']}")
    result = dict(
        method=spec.name,
        config=config,
        seed=job.seed,
        run_dir=run,
        seed_dir=seed_dir,
        seed_miou=seeds.get('mIoU'),
        best_threshold=seeds.get('best_threshold'),
        attn_recall=quality.get('recall'),
        attn_noise=quality.get('noise'),
        pseudo_miou=pseudo.get('mIoU'),
        pseudo_ignored_ratio=pseudo.get('ignored_ratio'),
        pseudo_label_rule=pseudo.get('rule'),
        pseudo_label_rule_source=rule_source,
        step_time_s=_mean_or_none(times),
        step_time_iterations=len(times),
        wall_time_s=round(sum(s['seconds'] for s in steps.values()), 3),
        workers=ctx.workers,
        step_seconds={k: s['seconds'] for k, s in steps.items()},
        warnings=warnings)
    _write_json(result_path, result)  # last: the run is finished
    ctx.log(f'[{job.label}] finished: seed mIoU {result["seed_miou"]}, pseudo-label '
            f'mIoU {result["pseudo_miou"]} -> {result_path}')
    return result


def _log_tail(path: str, lines: int = 40) -> str:
    if not osp.isfile(path):
        return f'({path} does not exist)'
    with open(path, errors='replace') as f:
        tail = f.readlines()[-lines:]
    return ''.join(tail)


def execute_jobs(jobs: Sequence[Job], ctx: RunContext,
                 workers: int = 1) -> Dict[Tuple[str, int], dict]:
    """Run the jobs, ``workers`` at a time, each after the jobs it needs.

    On a failure no new job starts; the running ones finish (their results are
    kept), the failed step's log tail is printed and :class:`RunFailed` raised.
    Ctrl-C terminates the running tools (every step resumes on the next run).
    """
    pending = list(jobs)
    keys = {j.key for j in jobs}
    for job in jobs:
        missing = [d for d in job.deps if d not in keys]
        if missing:
            raise ToolError(f'{job.label} needs the run(s) {missing}, which are not '
                            'planned')
    done: Dict[Tuple[str, int], dict] = {}
    errors: List[BaseException] = []
    running = {}
    _STOP.clear()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            while pending or running:
                if not errors:
                    for job in list(pending):
                        if len(running) >= max(1, workers):
                            break
                        if all(d in done for d in job.deps):
                            pending.remove(job)
                            running[pool.submit(run_job, job, ctx)] = job
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = running.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        done[job.key] = fut.result()
                        continue
                    errors.append(exc)
                    if running:
                        ctx.log(f'[{job.label}] failed; waiting for the '
                                f'{len(running)} running run(s) to finish (Ctrl-C '
                                'stops them; they resume on the next run)')
        except KeyboardInterrupt:
            stop_running_commands()
            raise
    if errors:
        first = errors[0]
        for exc in errors:
            if isinstance(exc, RunFailed):
                sys.stderr.write(f'---- {exc.job.label}: the last lines of '
                                 f'{exc.log_path} ----\n{_log_tail(exc.log_path)}'
                                 f'---- failed command: {shlex.join(exc.cmd)}\n')
        if len(errors) > 1:
            ctx.log(f'{len(errors)} runs failed; the first error follows')
        raise first
    if pending:  # pragma: no cover - every dependency is planned (checked above)
        raise ToolError(f'{len(pending)} run(s) could not start: '
                        + ', '.join(j.label for j in pending))
    return done


# ------------------------------------------------------------- leaderboard
def aggregate(values: Sequence[Optional[float]]) -> Tuple[Optional[float],
                                                          Optional[float]]:
    """Mean and sample standard deviation (``ddof=1``) of the defined values;
    the std is None for fewer than two, both are None for none."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return None, None
    mean = float(np.mean(vals))
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    return mean, std


def _rel_config(path: str) -> str:
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


def build_leaderboard(methods: Sequence[MethodSpec], seeds: Sequence[int],
                      results: Dict[Tuple[str, int], dict], baseline: MethodSpec,
                      toy_meta: dict, command: str, data_root: str) -> dict:
    """The leaderboard (``leaderboard.json``): per method its runs and the mean and
    std over seeds of :data:`METRICS`; rows: the baseline, then the others by mean
    seed mIoU, best first. ``step_time_rel`` is a run's step time over
    the baseline's step time of the same seed."""
    rows = []
    for spec in methods:
        per_seed = []
        for seed in seeds:
            r = results[(spec.stem, seed)]
            base = results.get((baseline.stem, seed), {}).get('step_time_s')
            rel = (r['step_time_s'] / base if r.get('step_time_s') is not None
                   and base else None)
            per_seed.append(dict(
                seed=seed,
                **{k: r.get(k) for k in METRICS if k != 'step_time_rel'},
                step_time_rel=rel,
                step_time_iterations=r.get('step_time_iterations'),
                run_dir=r.get('run_dir'),
                warnings=r.get('warnings', [])))
        stats = {k: aggregate([p[k] for p in per_seed]) for k in METRICS}
        first = results[(spec.stem, seeds[0])]
        rows.append(OrderedDict(
            name=spec.name,
            config=_rel_config(spec.config),
            seeds=list(seeds),
            seeds_from=spec.seeds,
            requires={k: [_rel_config(c), f] for k, (c, f) in spec.requires.items()},
            pseudo_label_rule=first.get('pseudo_label_rule'),
            pseudo_label_rule_source=first.get('pseudo_label_rule_source'),
            mean={k: v[0] for k, v in stats.items()},
            std={k: v[1] for k, v in stats.items()},
            per_seed=per_seed))
    # a leaderboard: the baseline first, then by mean seed mIoU (best first)
    rows.sort(key=lambda r: (r['config'] != _rel_config(baseline.config),
                             r['mean']['seed_miou'] is None,
                             -(r['mean']['seed_miou'] or 0.0)))
    return OrderedDict(
        command=command,
        data_root=data_root,
        toy_meta=toy_meta,
        seeds=list(seeds),
        baseline=dict(name=baseline.name, config=_rel_config(baseline.config)),
        units=dict(seed_miou='%', attn_recall='%', attn_noise='%', pseudo_miou='%',
                   best_threshold='CAM score', step_time_s='s per iteration',
                   step_time_rel='x baseline', wall_time_s='s per run'),
        methods=rows)


def _cell(mean, std, fmt='{:.2f}') -> str:
    if mean is None:
        return 'n/a'
    return fmt.format(mean) + ('' if std is None else ' ± ' + fmt.format(std))


def _rule_text(row: dict) -> str:
    rule = dict(row.get('pseudo_label_rule') or {})
    name = rule.pop('type', '?')
    if row.get('pseudo_label_rule_source') == 'fallback':
        return (f'`{name}` at the best seed threshold of each run (the config has no '
                '`pseudo_label_rule`: the seed rule itself)')
    args = ', '.join(f'{k}={v!r}' for k, v in rule.items())
    return f'`{name}({args})`'


def leaderboard_table(board: dict) -> List[str]:
    """The Markdown table of the leaderboard, one line a row."""
    base = board['baseline']['name']
    head = ['Method', 'Config', 'Seeds', 'Seed mIoU (mean ± std)', 'Attn recall',
            'Attn noise', 'Pseudo-label mIoU', f'Step time × {base}', 'Wall time']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join([':---'] * 3 + ['---:'] * (len(head) - 3)) + '|']
    for row in board['methods']:
        m, s = row['mean'], row['std']
        wall = _cell(m['wall_time_s'], s['wall_time_s'], '{:.0f}')
        lines.append('| ' + ' | '.join([
            row['name'], f"`{row['config']}`",
            ', '.join(str(x) for x in row['seeds']),
            _cell(m['seed_miou'], s['seed_miou']),
            _cell(m['attn_recall'], s['attn_recall']),
            _cell(m['attn_noise'], s['attn_noise']),
            _cell(m['pseudo_miou'], s['pseudo_miou']),
            _cell(m['step_time_rel'], s['step_time_rel']),
            wall if wall == 'n/a' else wall + ' s']) + ' |')
    return lines


def format_leaderboard_md(board: dict) -> str:
    """The Markdown leaderboard (:data:`LEADERBOARD_MD`): the table, the command,
    the rules and the toy data."""
    base = board['baseline']['name']
    lines = ['# WSSS seed methods on the toy dataset', ''] + leaderboard_table(board)
    lines += [
        '',
        'mean ± sample std (ddof=1) over the seeds; n/a: undefined. Seed mIoU (%): '
        'the seeds of the train split at the best background threshold of each run '
        '(`tools/eval_seeds.py`). Attn recall / noise (%): each class map binarised '
        'at 50 % of its maximum vs. the GT mask of that class, pooled (recall, '
        '1 - precision). Pseudo-label mIoU (%): over the pixels the labels label '
        '(`tools/make_pseudo_labels.py --eval`), with the rule below. Step time: '
        'mean time of a training iteration (the first one of each training '
        f'process left out) over the one of {base} with the same seed. Wall time: '
        'one run (training, seeds, evaluation, pseudo labels), as measured by the '
        'tool.', '',
        'Best background threshold (mean ± std): ' + ', '.join(
            r['name'] + ' ' + _cell(r['mean']['best_threshold'],
                                    r['std']['best_threshold'])
            for r in board['methods']) + '.', '',
        'Pseudo-label rules:', '']
    lines += [f"* {r['name']}: {_rule_text(r)}" for r in board['methods']]
    notes = [(r['name'], p['seed'], w) for r in board['methods']
             for p in r['per_seed'] for w in p.get('warnings', [])]
    if notes:
        lines += ['', 'Warnings:', '']
        lines += [f'* {n} (seed {s}): {w}' for n, s, w in notes]
    lines += ['', 'Produced by:', '', '```bash', board['command'], '```', '',
              f"Toy data `{board['data_root']}` (`toy_meta.json`):", '', '```json',
              json.dumps(board['toy_meta'], indent=2), '```', '']
    return '\n'.join(lines)


# -------------------------------------------------------------------- grid
def grid_items(config: str, data_root: str, rows: int) -> List[Tuple[str, str, str]]:
    """(id, image path, GT path) of the first ``rows`` images of the config's train
    split (the split the seeds are evaluated on)."""
    from mmwsss.utils.io import data_info_gt_path, data_info_id
    from mmwsss.utils.launch import build_split_dataset
    opts = {o.split('=', 1)[0]: o.split('=', 1)[1] for o in data_root_options(
        data_root)}
    dataset = build_split_dataset(config, 'train', opts)
    items = []
    for i in range(min(rows, len(dataset))):
        info = dataset.get_data_info(i)
        items.append((data_info_id(info), info['img_path'], data_info_gt_path(info)))
    return items


def _fit_text(text: str, width: int) -> Tuple[str, float]:
    import cv2
    scale = 0.45
    while scale > 0.25:
        (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if w <= width - 4:
            return text, scale
        scale -= 0.05
    while len(text) > 1:
        text = text[:-1]
        (w, _), _ = cv2.getTextSize(text + '.', cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if w <= width - 4:
            return text + '.', scale
    return text, scale


def draw_grid(items: Sequence[Tuple[str, str, str]],
              columns: Sequence[Tuple[str, str, float]], out: str,
              tile: int = 128, gap: int = 2, header: int = 22) -> None:
    """A picture grid: one row per image (image, GT mask, then each column's seed
    labels), the column headers written above. ``columns`` are (header, seed
    folder, background threshold): seed labels are
    :meth:`~mmwsss.utils.cam_io.CamRecord.seed` of the image's CAM file (the top
    class of the classes the file lists, the image's GT classes, background where
    its score is at most the threshold), as the seed evaluation makes them."""
    import cv2

    from mmwsss.pseudo.job import read_rgb
    from mmwsss.utils.cam_io import cam_path, load_cam
    from mmwsss.utils.io import read_label_png, voc_palette
    palette = voc_palette()
    heads = ['image', 'GT'] + [c[0] for c in columns]
    ncol, nrow = len(heads), len(items)
    width = ncol * tile + (ncol + 1) * gap
    height = header + nrow * tile + (nrow + 1) * gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    for c, text in enumerate(heads):
        x0 = gap + c * (tile + gap)
        text, scale = _fit_text(text, tile)
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(canvas, text, (x0 + (tile - w) // 2, (header + h) // 2),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    for r, (img_id, img_path, gt_path) in enumerate(items):
        panels = [read_rgb(img_path)]
        gt = read_label_png(gt_path)
        panels.append(palette[gt])
        for _, seed_dir, thr in columns:
            panels.append(palette[load_cam(cam_path(seed_dir, img_id)).seed(thr)])
        y0 = header + gap + r * (tile + gap)
        for c, p in enumerate(panels):
            interp = cv2.INTER_AREA if c == 0 else cv2.INTER_NEAREST
            x0 = gap + c * (tile + gap)
            canvas[y0:y0 + tile, x0:x0 + tile] = cv2.resize(
                np.ascontiguousarray(p), (tile, tile), interpolation=interp)
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(canvas[..., ::-1]))
    if not ok:  # pragma: no cover
        raise ToolError(f'{out}: could not encode the picture grid')
    with atomic_write(out) as f:
        f.write(buf.tobytes())


# ----------------------------------------------------------------- outputs
def write_results(work_dir: str, methods: Sequence[MethodSpec],
                  seeds: Sequence[int], results: Dict[Tuple[str, int], dict],
                  baseline: MethodSpec, toy_meta: dict, command: str,
                  data_root: str, grid_rows: int = 6) -> dict:
    """Write :data:`LEADERBOARD_JSON`, :data:`LEADERBOARD_MD` and :data:`GRID_PNG`
    (each atomically) into ``work_dir``; the leaderboard."""
    board = build_leaderboard(methods, seeds, results, baseline, toy_meta, command,
                              data_root)
    _write_json(osp.join(work_dir, LEADERBOARD_JSON), board)
    with atomic_write(osp.join(work_dir, LEADERBOARD_MD), 'w') as f:
        f.write(format_leaderboard_md(board))
    items = grid_items(methods[0].config, data_root, grid_rows)
    # the columns in the leaderboard's order
    by_config = {_rel_config(m.config): m for m in methods}
    ordered = [by_config[row['config']] for row in board['methods']]
    columns = [(m.name, results[(m.stem, seeds[0])]['seed_dir'],
                results[(m.stem, seeds[0])]['best_threshold']) for m in ordered]
    draw_grid(items, columns, osp.join(work_dir, GRID_PNG))
    return board
