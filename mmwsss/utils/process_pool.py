"""A map over worker processes that stops cleanly on an error, a crash or Ctrl-C.

``multiprocessing.Pool`` is not safe to stop early: its workers share one lock per
queue, and a worker terminated while it holds one (sending a result, taking a task)
leaves ``Pool.terminate()`` blocked forever; a worker that dies in the middle of a
task (killed by the OOM killer, a crash in C code) leaves ``imap`` waiting forever
for that task's result. :func:`map_in_processes` gives each worker a pipe of its own
(nothing is shared between workers), watches the processes themselves, and on any
error stops every worker before it re-raises, so a job either finishes or exits.
"""
import multiprocessing as mp
import signal
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable, List, Optional, Sequence

__all__ = ['map_in_processes', 'WorkerDiedError']

# tasks queued per worker: one running, one waiting in its pipe
_PREFETCH = 2
_STOP_TIMEOUT_S = 10.0


class WorkerDiedError(RuntimeError):
    """A worker process exited in the middle of a task."""


class _RemoteTraceback(Exception):
    """The worker-side traceback, attached as ``__cause__`` of a re-raised error."""

    def __str__(self):
        return self.args[0]


def _worker_main(conn, func, initializer, initargs):  # pragma: no cover - child
    # Ctrl-C reaches the whole process group: the parent decides what happens
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # stopping a worker (SIGTERM) ends it at once, wherever it is: the caller cleans
    # up what a task may have left (temporary files)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the parent is gone
            return
        if msg is None:
            return
        index, item = msg
        try:
            conn.send((index, True, func(item)))
            continue
        except Exception as e:  # noqa: BLE001 - every error goes to the parent
            error, tb = e, traceback.format_exc()
        try:  # pickling comes before writing: a failure here sends nothing
            conn.send((index, False, (error, tb)))
        except Exception:  # noqa: BLE001 - an error (or result) that does not pickle
            conn.send((index, False,
                       (RuntimeError(f'{type(error).__name__}: {error}'), tb)))


def _stop(procs) -> None:
    """Terminate and reap every worker (kill what does not stop in time)."""
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    for p in procs:
        p.join(_STOP_TIMEOUT_S)
        if p.exitcode is None:
            p.kill()
            p.join()


def map_in_processes(func: Callable[[Any], Any],
                     items: Sequence[Any],
                     workers: int,
                     initializer: Optional[Callable] = None,
                     initargs: tuple = (),
                     callback: Optional[Callable[[Any], None]] = None,
                     describe: Callable[[Any], str] = repr,
                     context: Optional[str] = None) -> List[Any]:
    """``[func(x) for x in items]`` computed by ``workers`` processes.

    Args:
        func: a picklable function of one item (module level).
        items: the inputs; each is sent to a worker as it becomes free.
        workers: number of processes (at most ``len(items)`` are started).
        initializer: called with ``initargs`` once in each worker.
        callback: called in the calling process with each result as it arrives
            (e.g. a progress bar).
        describe: names an item in the error raised when its worker dies.
        context: the multiprocessing start method; default ``'fork'`` where it
            exists (workers inherit the loaded modules), else ``'spawn'``.

    Returns:
        The results in the order of ``items``.

    Raises:
        The first exception a task raised (its worker traceback as ``__cause__``),
        :class:`WorkerDiedError` when a worker exits in the middle of a task,
        ``KeyboardInterrupt``. In every case all workers have exited when it is
        raised.
    """
    n = len(items)
    if n == 0:
        return []
    if context is None:
        context = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
    ctx = mp.get_context(context)
    workers = max(1, min(int(workers), n))
    results: List[Any] = [None] * n
    procs, conns = [], []
    pending = {}  # worker slot -> indices sent and not answered, in order
    next_index = 0

    def feed(slot):
        nonlocal next_index
        while next_index < n and len(pending[slot]) < _PREFETCH:
            conns[slot].send((next_index, items[next_index]))
            pending[slot].append(next_index)
            next_index += 1

    try:
        for slot in range(workers):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(
                target=_worker_main,
                args=(child_end, func, initializer, initargs),
                daemon=True,
                name=f'mmwsss-worker-{slot}')
            p.start()
            child_end.close()
            procs.append(p)
            conns.append(parent_end)
            pending[slot] = []
            feed(slot)
        done = 0
        while done < n:
            by_handle = {}
            for slot in range(workers):
                if pending[slot]:
                    by_handle[conns[slot]] = slot
                    by_handle[procs[slot].sentinel] = slot
            for handle in wait(list(by_handle)):
                slot = by_handle[handle]
                if not pending[slot]:
                    continue  # answered through the other handle of this slot
                conn = conns[slot]
                try:
                    has_reply = conn.poll()
                    reply = conn.recv() if has_reply else None
                except (EOFError, OSError):
                    reply = None
                if reply is None:
                    procs[slot].join(_STOP_TIMEOUT_S)
                    index = pending[slot][0]
                    raise WorkerDiedError(
                        f'worker process {procs[slot].pid} exited (exit code '
                        f'{procs[slot].exitcode}) while working on '
                        f'{describe(items[index])}; it was killed or crashed '
                        '(out of memory?). Run again with fewer workers; '
                        'finished results are kept')
                index, ok, value = reply
                pending[slot].remove(index)
                if not ok:
                    error, tb = value
                    raise error from _RemoteTraceback(tb)
                results[index] = value
                done += 1
                if callback is not None:
                    callback(value)
                feed(slot)
        for conn in conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for p in procs:
            p.join(_STOP_TIMEOUT_S)
    finally:
        _stop(procs)
        for conn in conns:
            conn.close()
    return results
