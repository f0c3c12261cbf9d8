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
