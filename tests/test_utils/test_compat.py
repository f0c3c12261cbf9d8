import io
import pickle
import sys

import pytest
import torch


def test_torchvision_and_mmpretrain_import():
    import mmwsss  # noqa: F401
    import torchvision
    import torchvision.transforms.functional as F
    img = torch.rand(3, 8, 8)
    assert F.resize(img, [4, 4], antialias=True).shape == (3, 4, 4)
    import mmpretrain.models  # noqa: F401
    from mmengine.utils.dl_utils import collect_env
    env = collect_env()
    assert 'TorchVision' in env
    assert torchvision.__version__


def test_shim_is_noop_when_torchvision_works():
    from mmwsss.utils import compat
    # torchvision is imported (shimmed or not): calling again changes nothing
    lib_before = compat._TV_LIB
    assert compat.fix_torchvision_ops() is False
    assert compat._TV_LIB is lib_before


def test_full_mmcv_ops():
    from mmengine.utils.dl_utils import mmcv_full_available
    assert mmcv_full_available()
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
    keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)[1]
    assert keep.tolist() == [0]


def _checkpoint_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_mmengine_types_allowed_with_weights_only():
    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('compat-test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_info('iter', 3)
    ckpt = dict(
        meta=dict(seed=0, arr=np.arange(3), f=np.float64(2.0),
                  i=np.int64(4)),
        message_hub=hub.state_dict(),
        state_dict={'w': torch.ones(2)})
    out = torch.load(_checkpoint_bytes(ckpt))  # weights_only default (True)
    assert isinstance(out['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    assert out['meta']['arr'].tolist() == [0, 1, 2]
    assert out['meta']['i'] == 4


class _Evil:

    def __reduce__(self):
        return (print, ('pwned', ))


def test_weights_only_still_protects():
    buf = io.BytesIO()
    torch.save({'x': _Evil()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf)


def test_getattr_is_restricted():
    """Only HistoryBuffer methods may be fetched through ``getattr`` in a
    checkpoint; anything else is refused."""
    import numpy as np

    class _GetattrAttack:

        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    buf = io.BytesIO()
    torch.save({'x': _GetattrAttack()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='only allows'):
        torch.load(buf)


def test_empty_numpy_arrays_load_with_weights_only():
    """Empty numpy arrays (e.g. the OAA maps of the first checkpoint of a run, saved
    before any map was accumulated) pickle their buffer as ``builtins.bytes()``
    under protocol 2; they load with ``weights_only`` (issue: the first OAA
    checkpoint could not be resumed or exported)."""
    import numpy as np
    ckpt = dict(oaa_state=dict(
        image_ids=np.array([], dtype=np.str_),
        ori_shapes=np.zeros((0, 2), np.int32),
        data=np.zeros((0, ), np.float16)))
    out = torch.load(_checkpoint_bytes(ckpt))
    assert out['oaa_state']['ori_shapes'].shape == (0, 2)
    assert out['oaa_state']['image_ids'].size == 0


def test_bytes_is_restricted():
    """``bytes(n)`` (allocate n bytes) is refused; only the empty object is rebuilt."""

    class _BytesAttack:

        def __reduce__(self):
            return (bytes, (10, ))

    buf = io.BytesIO()
    torch.save({'x': _BytesAttack()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='only allows'):
        torch.load(buf)


def test_adjust_hue_negative_factor():
    """mmcv 2.1's adjust_hue raised ``OverflowError`` under numpy 2 for negative hue
    factors (about half of the images of ``ColorJitter(hue=0.1)``); the shim gives
    numpy 1's wrap-around result."""
    import cv2
    import mmcv
    import numpy as np
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (12, 10, 3)).astype(np.uint8)
    for factor in (-0.1, -0.5, 0.0, 0.07, 0.5):
        out = mmcv.adjust_hue(img, factor)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + int(factor * 255)) % 256
        expect = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)
        np.testing.assert_array_equal(out, expect, err_msg=str(factor))
    pil = mmcv.adjust_hue(img, -0.1, backend='pillow')
    assert pil.shape == img.shape and pil.dtype == np.uint8


def test_color_jitter_hue_runs_on_every_draw():
    """MMPretrain's ColorJitter with the OAA recipe's hue=0.1 on many draws."""
    import numpy as np
    from mmpretrain.datasets.transforms import ColorJitter
    t = ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)
    img = np.random.RandomState(1).randint(0, 256, (20, 16, 3)).astype(np.uint8)
    np.random.seed(0)
    for _ in range(40):
        out = t(dict(img=img.copy()))
        assert out['img'].shape == img.shape
