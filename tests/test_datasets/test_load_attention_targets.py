"""LoadAttentionTargets: IAM soft targets warped into the augmented view."""
import numpy as np
import pytest
import torch

from mmwsss.datasets.transforms.load_attention_targets import \
    LoadAttentionTargets
from mmwsss.utils.cam_io import cam_path, save_cam

H, W = 12, 16


def _maps():
    """Three smooth maps in [0, 1] at the original size (H, W)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.stack([yy / (H - 1), xx / (W - 1),
                     (yy + xx) / (H + W - 2)]).astype(np.float32)


def _results(img=None, img_id='a'):
    if img is None:
        img = np.zeros((H, W, 3), np.uint8)
    return dict(img=img, img_shape=(H, W), ori_shape=(H, W), img_id=img_id,
                seg_fields=[])


def _compose(transforms):
    from mmcv.transforms import Compose

    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return Compose(transforms)


@pytest.mark.parametrize('geom', [
    [],
    [dict(type='Resize', scale_factor=1.5, keep_ratio=True),
     dict(type='RandomCropWithBox', crop_size=(10, 14)),
     dict(type='RandomFlip', prob=1.0)],
    [dict(type='Resize', scale_factor=2.0, keep_ratio=True),
     dict(type='RandomCropWithBox', crop_size=(16, 12)),
     dict(type='RandomFlip', prob=0.0)],
    [dict(type='Resize', scale=(12, 9), keep_ratio=True),
     dict(type='RandomFlip', prob=1.0, direction='vertical')],
])
def test_targets_follow_the_image_geometry(tmp_path, geom):
    """The maps themselves, used as a float image, go through mmcv's real
    transforms; the loaded targets must match the augmented image."""
    maps = _maps()
    save_cam(cam_path(str(tmp_path), 'a'), maps, [0, 1, 2], num_classes=3,
             compress=False)
    np.random.seed(0)
    pipe = _compose(geom + [
        dict(type='LoadAttentionTargets', cam_dir=str(tmp_path),
             num_classes=3)
    ])
    img = np.ascontiguousarray(maps.transpose(1, 2, 0))  # (H, W, 3) float32
    out = pipe(_results(img))
    att = out['gt_attention']
    ref = out['img'].transpose(2, 0, 1)
    assert att.dtype == np.float32
    assert att.shape == ref.shape == (3, ) + tuple(out['img_shape'][:2])
    # float16 storage + cv2 vs torch bilinear: small differences only
    np.testing.assert_allclose(att, ref, atol=2e-3, rtol=0)
    assert att.min() >= 0 and att.max() <= 1


def test_manual_resize_crop_flip(tmp_path):
    """Hand-built meta vs an explicit resize -> crop -> flip of the dense maps."""
    maps = _maps()
    save_cam(cam_path(str(tmp_path), 'b'), maps[[0, 2]], [2, 0], num_classes=4)
    # CamRecord stores ascending labels: class 0 <- maps[2], class 2 <- maps[0]
    dense = np.zeros((4, H, W), np.float32)
    dense[0], dense[2] = maps[2], maps[0]
    results = dict(img_id='b', ori_shape=(H, W), img_shape=(9, 11),
                   scale_factor=(24 / W, 18 / H), crop_bbox=(5, 14, 3, 14),
                   flip=True, flip_direction='horizontal')
    out = LoadAttentionTargets(str(tmp_path), num_classes=4)(results)
    att = out['gt_attention']
    x = torch.nn.functional.interpolate(
        torch.from_numpy(dense)[None], size=(18, 24), mode='bilinear',
        align_corners=False)[0].numpy()
    ref = x[:, 5:14, 3:14][:, :, ::-1]
    assert att.shape == (4, 9, 11)
    np.testing.assert_allclose(att, ref, atol=1e-3, rtol=0)
    assert not att[[1, 3]].any()  # classes without a map are zero


def test_no_maps_gives_zeros(tmp_path):
    save_cam(cam_path(str(tmp_path), 'c'), np.zeros((0, H, W)), [],
             num_classes=2)
    out = LoadAttentionTargets(str(tmp_path))(_results(img_id='c'))
    assert out['gt_attention'].shape == (2, H, W)
    assert not out['gt_attention'].any()


def test_packed_as_gt_attention(tmp_path):
    save_cam(cam_path(str(tmp_path), 'a'), _maps(), [0, 1, 2], num_classes=3)
    pipe = _compose([
        dict(type='RandomFlip', prob=1.0),
        dict(type='LoadAttentionTargets', cam_dir=str(tmp_path)),
        dict(type='PackWSSSInputs'),
    ])
    results = _results()
    results['gt_label'] = np.array([1, 1, 1], np.float32)
    packed = pipe(results)
    ds = packed['data_samples']
    assert 'gt_attention' in ds
    data = ds.gt_attention.data
    assert data.dtype == torch.float32 and data.shape == (3, H, W)
    ref = torch.from_numpy(_maps()[..., ::-1].copy())
    torch.testing.assert_close(data, ref, atol=1e-3, rtol=0)


def test_missing_file_error(tmp_path):
    t = LoadAttentionTargets(str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        t(_results(img_id='2007_000032'))
    msg = str(e.value)
    assert '2007_000032' in msg and cam_path(str(tmp_path), '2007_000032') in msg
    assert 'xport' in msg


def test_size_and_class_mismatch_errors(tmp_path):
    path = cam_path(str(tmp_path), 'a')
    save_cam(path, np.zeros((1, 10, 16)), [0], num_classes=3)
    with pytest.raises(ValueError) as e:
        LoadAttentionTargets(str(tmp_path))(_results())
    msg = str(e.value)
    assert '(10, 16)' in msg and f'({H}, {W})' in msg and path in msg
    save_cam(path, np.zeros((1, H, W)), [0], num_classes=3)
    with pytest.raises(ValueError, match='num_classes is 20'):
        LoadAttentionTargets(str(tmp_path), num_classes=20)(_results())
    with pytest.raises(ValueError, match='interpolation'):
        LoadAttentionTargets(str(tmp_path), interpolation='cubic')


def test_interpolation_halo_is_zeroed(tmp_path):
    """A bilinear upsampling of a map that drops to 0 spreads values below 1/255
    around its support. The official targets are uint8 PNGs (there such values are
    0), so by default they are zeroed and stay out of the positive set p > 0 of the
    hybrid loss; every value >= 1/255 is kept as it is."""
    maps = np.zeros((2, H, W), np.float32)
    maps[0, 4:8, 5:9] = 0.02     # a faint region: its halo is mostly < 1/255
    maps[1, 6, 10] = 1.0         # a peak: its halo has small values too
    save_cam(cam_path(str(tmp_path), 'h'), maps, [0, 1], num_classes=2,
             compress=False)
    results = dict(img_id='h', ori_shape=(H, W), img_shape=(4 * H, 4 * W),
                   scale_factor=(4.0, 4.0))
    raw = LoadAttentionTargets(str(tmp_path), zero_below=None)(
        dict(results))['gt_attention']
    out = LoadAttentionTargets(str(tmp_path))(dict(results))['gt_attention']
    halo = (raw > 0) & (raw < 1 / 255)
    assert halo.sum() > 0.1 * (raw > 0).sum()  # a real halo
    assert not out[halo].any()
    np.testing.assert_array_equal(out[~halo], raw[~halo])
    assert ((out == 0) | (out >= 1 / 255)).all()
    # the positive set of the hybrid loss (pos_threshold=0) shrinks accordingly
    assert (out > 0).sum() == (raw > 0).sum() - halo.sum()
    for bad in (-0.1, 1.0, 'x', True):
        with pytest.raises(ValueError, match='zero_below'):
            LoadAttentionTargets(str(tmp_path), zero_below=bad)
    assert LoadAttentionTargets(str(tmp_path), zero_below=0).zero_below is None
