"""Compatibility shims that make the OpenMMLab stack usable on the pinned CPU install.

Each shim acts only when the problem is really there, so a normal GPU install (CUDA torch
with a matching torchvision and a prebuilt mmcv) is left untouched:

* :func:`fix_torchvision_ops` -- ``torchvision==0.28.0`` is a CUDA-only wheel; over the CPU
  torch its compiled ops library cannot load and ``import torchvision`` dies with
  ``RuntimeError: operator torchvision::nms does not exist``. mmpretrain imports
  torchvision at top level and MMEngine's Runner imports it in ``collect_env``. When (and
  only when) that exact failure happens, the two operator schemas torchvision's Python
  code registers fake kernels for are defined, so that the pure-Python part of
  torchvision imports; its compiled ops (``nms``, ``roi_align`` ...) stay unavailable.
* :func:`install_mmcv_ext_stub` -- with ``mmcv-lite`` (no compiled ops) ``import
  mmseg.models`` fails on ``mmcv._ext``. The stub lets the import succeed; any compiled op
  raises a clear error when called. Not used with the full mmcv that ``make install``
  builds.
* :func:`fix_mmcv_adjust_hue` -- mmcv 2.1's ``adjust_hue`` (used by MMPretrain's
  ``ColorJitter``) shifts the hue channel by ``np.uint8(hue_factor * 255)``; numpy 2
  raises ``OverflowError: Python integer -22 out of bounds for uint8`` for every
  negative ``hue_factor`` (about half of the images with ``hue=0.1``), where numpy 1
  wrapped around. When numpy really raises there, ``adjust_hue`` is replaced by the same
  function with the wrap-around made explicit (``int(hue_factor * 255) % 256``), which
  gives numpy 1's results.
* :func:`register_checkpoint_safe_globals` -- torch >= 2.6 loads checkpoints with
  ``weights_only=True``; MMEngine 0.10.7 checkpoints (resume, ``load_from``) contain a
  handful of non-tensor types (``HistoryBuffer``, numpy arrays / dtypes / scalars, the
  empty ``bytes`` buffer of an empty numpy array).
  They are allow-listed one by one with ``torch.serialization.add_safe_globals``; the
  ``weights_only`` protection is kept for everything else.
"""
import importlib.machinery
import importlib.util
import sys
import types
import warnings

import torch

_TV_LIB = None
_TV_SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
)


def _purge_modules(prefix: str) -> None:
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + '.')]:
        del sys.modules[name]


def fix_torchvision_ops() -> bool:
    """Make ``import torchvision`` work when its compiled ops cannot load.

    Returns True if the shim was applied, False if torchvision is absent or imports
    fine on its own (nothing is changed then).
    """
    global _TV_LIB
    if 'torchvision' in sys.modules and _TV_LIB is None:
        return False  # already imported successfully by someone else
    try:
        if importlib.util.find_spec('torchvision') is None:
            return False
    except (ImportError, ValueError):
        return False
    try:
        import torchvision  # noqa: F401
        return False
    except RuntimeError as e:
        if 'torchvision::' not in str(e):
            raise
        err = e
    _purge_modules('torchvision')
    if _TV_LIB is None:
        lib = torch.library.Library('torchvision', 'DEF')
        for schema in _TV_SCHEMAS:
            lib.define(schema)
        _TV_LIB = lib
    try:
        import torchvision  # noqa: F401,F811
    except RuntimeError as e2:  # pragma: no cover - a new torchvision/torch pair
        raise RuntimeError(
            'torchvision cannot be imported with this torch build even after '
            'mmwsss defined its missing operator schemas. Install the torchvision '
            'that matches your torch (CPU install: `make install` pins '
            f'torchvision==0.28.0 for torch==2.13.0). Original error: {err}') from e2
    return True


def install_mmcv_ext_stub() -> bool:
    """Stub ``mmcv._ext`` when mmcv-lite (no compiled ops) is installed."""
    try:
        if importlib.util.find_spec('mmcv') is None:
            return False
        if importlib.util.find_spec('mmcv._ext') is not None:
            return False
    except (ImportError, ValueError):
        return False
    if 'mmcv._ext' in sys.modules:
        return False
    mod = types.ModuleType('mmcv._ext')
    # MMEngine's mmcv_full_available() uses pkgutil.find_loader, which needs a spec
    mod.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)

    def __getattr__(name):
        if name.startswith('__'):
            raise AttributeError(name)

        def _missing(*args, **kwargs):
            raise NotImplementedError(
                f'mmcv op {name!r} needs the full mmcv build with compiled ops; '
                'mmcv-lite is installed. Run `make install` (CPU) or install mmcv '
                'from the OpenMMLab wheels (GPU).')

        return _missing

    mod.__getattr__ = __getattr__
    sys.modules['mmcv._ext'] = mod
    import mmcv
    mmcv._ext = mod
    warnings.warn('mmcv-lite detected: compiled mmcv ops are stubbed and raise '
                  'when called. Install the full mmcv==2.1.0 for CPU ops.')
    return True


def _hue_shift_overflows() -> bool:
    import numpy as np
    try:
        np.uint8(-0.1 * 255)
    except OverflowError:
        return True
    return False


def _adjust_hue(img, hue_factor: float, backend=None):
    """:func:`mmcv.adjust_hue` with the hue rotation computed modulo 256 (numpy 2)."""
    import cv2
    import mmcv.image.photometric as photometric
    import numpy as np
    from PIL import Image
    if backend is None:
        backend = photometric.imread_backend
    if backend not in ['cv2', 'pillow']:
        raise ValueError(f'backend: {backend} is not supported.'
                         f"Supported backends are 'cv2', 'pillow'")
    if not (-0.5 <= hue_factor <= 0.5):
        raise ValueError(f'hue_factor:{hue_factor} is not in [-0.5, 0.5].')
    if not (isinstance(img, np.ndarray) and (img.ndim in {2, 3})):
        raise TypeError('img should be ndarray with dim=[2 or 3].')
    # numpy 1 turned e.g. -22.9 into uint8 234: truncate, then wrap around
    shift = np.uint8(int(hue_factor * 255) % 256)
    if backend == 'pillow':
        assert img.dtype == np.uint8, 'Pillow backend only support uint8 type'
        pil_image = Image.fromarray(img[..., ::-1], mode='RGB')
        input_mode = pil_image.mode
        if input_mode in {'L', '1', 'I', 'F'}:
            return pil_image
        h, s, v = pil_image.convert('HSV').split()
        np_h = np.array(h, dtype=np.uint8)
        with np.errstate(over='ignore'):
            np_h += shift
        h = Image.fromarray(np_h, 'L')
        pil_image = Image.merge('HSV', (h, s, v)).convert(input_mode)
        return np.array(pil_image, dtype=img.dtype)[..., ::-1]
    dtype = img.dtype
    img = img.astype(np.uint8)
    hsv_img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
    h, s, v = cv2.split(hsv_img)
    h = h.astype(np.uint8)
    with np.errstate(over='ignore'):
        h += shift
    hsv_img = cv2.merge([h, s, v])
    return cv2.cvtColor(hsv_img, cv2.COLOR_HSV2BGR_FULL).astype(dtype)


def fix_mmcv_adjust_hue() -> bool:
    """Replace ``mmcv.adjust_hue`` when numpy 2 makes it raise on negative factors.

    Returns True if the shim was applied."""
    try:
        if importlib.util.find_spec('mmcv') is None:
            return False
    except (ImportError, ValueError):
        return False
    if not _hue_shift_overflows():
        return False
    import mmcv
    import mmcv.image
    import mmcv.image.photometric as photometric
    if getattr(photometric.adjust_hue, '__wrapped_by_mmwsss__', False):
        return False
    _adjust_hue.__wrapped_by_mmwsss__ = True
    for mod in (mmcv, mmcv.image, photometric):
        if hasattr(mod, 'adjust_hue'):
            mod.adjust_hue = _adjust_hue
    return True


def _numpy_safe_globals():
    import numpy as np
    out = [np.ndarray, np.dtype]
    # dtype classes (numpy >= 1.25 exposes them in numpy.dtypes)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            obj = getattr(dtypes, name)
            if isinstance(obj, type) and issubclass(obj, np.dtype):
                out.append(obj)
    # the reconstructors numpy pickles reference, under both the numpy 2 module
    # path and the numpy 1 path older checkpoints carry
    try:
        from numpy._core import multiarray as _ma  # numpy >= 2
    except ImportError:  # pragma: no cover
        from numpy.core import multiarray as _ma
    for fn_name in ('_reconstruct', 'scalar'):
        fn = getattr(_ma, fn_name)
        out.append(fn)
        out.append((fn, f'numpy.core.multiarray.{fn_name}'))
        out.append((fn, f'numpy._core.multiarray.{fn_name}'))
    return out


def _history_buffer_getattr(obj, name):
    """A restricted ``getattr`` for checkpoints.

    ``HistoryBuffer.__getstate__`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. Allow-listing the builtin ``getattr`` would let
    a checkpoint fetch any attribute of any allowed object; this stand-in, registered
    under the name ``builtins.getattr``, only returns public methods of
    ``HistoryBuffer`` and refuses everything else.
    """
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer
    if (obj is HistoryBuffer and isinstance(name, str)
            and not name.startswith('_')
            and callable(getattr(HistoryBuffer, name, None))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); mmwsss only allows '
        'HistoryBuffer statistics methods. Load it with weights_only=False only '
        'if you trust its source.')


def _pickled_empty_bytes(*args):
    """A restricted ``bytes`` constructor for checkpoints.

    ``torch.save`` pickles with protocol 2, which has no opcode for ``bytes``: an
    empty ``bytes`` object -- the data buffer of every empty numpy array, e.g. the
    OAA maps of a checkpoint saved before any map was accumulated -- is written as the
    call ``builtins.bytes()`` (non-empty buffers as ``_codecs.encode``, which torch
    allows). Allow-listing the builtin ``bytes`` would let a checkpoint allocate
    ``bytes(n)`` of any size; this stand-in, registered under the name
    ``builtins.bytes``, only rebuilds the empty object.
    """
    import pickle
    if not args:
        return b''
    raise pickle.UnpicklingError(
        f'checkpoint asks for bytes{args!r}; mmwsss only allows bytes() (the empty '
        'buffer pickle protocol 2 writes). Load it with weights_only=False only if '
        'you trust its source.')


_SAFE_GLOBALS_DONE = False


def register_checkpoint_safe_globals(extra=()) -> None:
    """Allow-list the types MMEngine writes into checkpoints for ``weights_only`` loads.

    Args:
        extra: further classes/functions (or ``(obj, 'module.name')`` pairs) to allow,
            e.g. a custom type a user stores in ``runner.message_hub``.
    """
    global _SAFE_GLOBALS_DONE
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4: weights_only is not the default anyway
        return
    if not _SAFE_GLOBALS_DONE:
        from mmengine.logging.history_buffer import HistoryBuffer
        add([HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
             (_pickled_empty_bytes, 'builtins.bytes')] + _numpy_safe_globals())
        _SAFE_GLOBALS_DONE = True
    if extra:
        add(list(extra))


def setup_compat() -> None:
    """Run every shim (idempotent). Called by ``import mmwsss``."""
    install_mmcv_ext_stub()
    fix_torchvision_ops()
    fix_mmcv_adjust_hue()
    register_checkpoint_safe_globals()
