"""How every mmwsss tool ends on an error: one line with the cause and the fix.

The errors mmwsss raises for bad input (a missing or unreadable file, a checkpoint that
does not fit, a wrong config value, a full disk, a training stopped by a guard) carry a
message that names the file or config key and what to do. A tool run through
:func:`run_tool` prints that message as one line ``<tool>: error: <message>`` on stderr
and exits with status 1, without a traceback; ``MMWSSS_DEBUG=1`` re-raises it with the
traceback. Any other exception (a bug) keeps its traceback.
"""
import errno
import os
import sys
from typing import Callable, Optional

DEBUG_ENV = 'MMWSSS_DEBUG'
_ERRNO_FIX = {
    errno.ENOSPC: 'free some disk space and run the same command again (finished '
    'files are complete and kept)',
    errno.EDQUOT: 'the disk quota is full: free some space and run the same '
    'command again (finished files are kept)',
    errno.EACCES: 'check the permissions of the file / folder',
    errno.EROFS: 'the file system is read-only: write somewhere else',
}


class ToolError(Exception):
    """An error of a tool's input or environment whose message says what to do."""


def checkpoint_read_errors() -> tuple:
    """What reading a file that is not a readable PyTorch checkpoint raises
    (``torch.load``, MMEngine's ``CheckpointLoader``): missing or a folder
    (``OSError``), empty (``EOFError``), a truncated zip (``RuntimeError``), a pickle
    the weights-only loader refuses (``UnpicklingError``), text or other bytes
    (``KeyError``, ``ValueError``, ``BadZipFile``)."""
    import pickle
    import zipfile
    return (OSError, EOFError, RuntimeError, KeyError, ValueError,
            pickle.UnpicklingError, zipfile.BadZipFile)


def load_checkpoint_file(path: str,
                         load: Optional[Callable] = None,
                         what: str = 'checkpoint'):
    """Read a checkpoint file for a tool; a file that cannot be read ends in a
    :class:`ToolError` naming it, the cause and the fix.

    Args:
        path: the file.
        load: ``load(path)`` reads it; default: MMEngine's
            ``CheckpointLoader.load_checkpoint(path, map_location='cpu')``.
        what: what the file is, for the message.
    """
    if load is None:
        from mmengine.runner import CheckpointLoader

        def load(p):
            return CheckpointLoader.load_checkpoint(p, map_location='cpu')
    try:
        return load(path)
    except checkpoint_read_errors() as e:
        raise ToolError(
            f'{path}: cannot read the {what}: {type(e).__name__}: '
            f'{error_line(e)}; pass a PyTorch checkpoint file (torch.save, '
            '.pth) and download it again if it is truncated') from e


def user_errors() -> tuple:
    """The exception types reported as one line (bad input, not bugs)."""
    import pickle
    import zipfile

    from mmwsss.utils.launch import CheckpointMismatchError
    errors = [ToolError, OSError, KeyError, ValueError, ImportError,
              CheckpointMismatchError, pickle.UnpicklingError, zipfile.BadZipFile,
              EOFError]
    try:
        from mmwsss.engine.hooks.check_invalid_loss_hook import InvalidLossError
        errors.append(InvalidLossError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def error_line(e: BaseException) -> str:
    """The message of ``e`` as one line (``KeyError`` without its quotes)."""
    if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str):
        msg = e.args[0]
    else:
        msg = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in msg:
        msg = f'{e.filename}: {msg}'
    if isinstance(e, OSError) and e.errno in _ERRNO_FIX:
        msg += f'; {_ERRNO_FIX[e.errno]}'
    return ' '.join(msg.split())


def save_converted_checkpoint(src: str, dst: str, checkpoint,
                              convert: Callable, prefix: str = '',
                              converter: str = '') -> int:
    """The body of a weight converter tool: ``convert`` the loaded ``checkpoint``
    of file ``src`` (a conversion error becomes a :class:`ToolError` naming the
    file), add ``prefix`` to the keys, and write ``{'state_dict', 'meta'}``
    (``meta``: the source file name and the ``converter``) to ``dst``
    atomically. Returns the number of tensors written."""
    import os.path as osp

    import torch

    from mmwsss.utils.io import atomic_write
    try:
        state = convert(checkpoint)
    except (KeyError, ValueError, TypeError) as e:
        # the messages name the keys that do not fit; add the file
        raise ToolError(f'{src}: {error_line(e)}') from e
    state = {prefix + k: v.contiguous() for k, v in state.items()}
    out = {'state_dict': state,
           'meta': {'source': osp.basename(src), 'converter': converter}}
    with atomic_write(dst) as f:
        torch.save(out, f)
    return len(state)


def run_tool(main: Callable[[], Optional[int]], name: Optional[str] = None,
             interrupted: Optional[str] = None) -> None:
    """Run a tool's ``main`` and turn input errors into a one-line exit.

    Args:
        main: the tool's entry point (no arguments; it parses ``sys.argv``).
        name: how the tool is named in the message; default: the script's name.
        interrupted: what to say on Ctrl-C (default: ``interrupted``).
    """
    name = name or os.path.basename(sys.argv[0])
    try:
        code = main()
    except KeyboardInterrupt:
        sys.exit(f'{name}: {interrupted or "interrupted"}')
    except user_errors() as e:
        if os.environ.get(DEBUG_ENV, '') not in ('', '0'):
            raise
        sys.exit(f'{name}: error: {error_line(e)} ({DEBUG_ENV}=1 shows the '
                 'traceback)')
    if code:
        sys.exit(code)
