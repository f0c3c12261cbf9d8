import numpy as np
import torch

from mmwsss.utils.geometry import to_canonical


def _pipeline(seed):
    from mmcv.transforms import Compose

    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    np.random.seed(seed)
    return Compose([
        dict(type='RandomResize', scale=(64, 48), ratio_range=(0.8, 1.6),
             keep_ratio=True),
        dict(type='RandomCropWithBox', crop_size=(40, 40)),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackWSSSInputs'),
    ])


def test_inverse_of_resize_crop_flip():
    """Feeding the augmented image itself through to_canonical recovers the original
    image inside the crop (smooth image -> small interpolation error)."""
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([yy / h * 255, xx / w * 255, (yy + xx) / (h + w) * 255],
                   -1).astype(np.uint8)
    flips = set()
    for seed in range(6):
        results = dict(img=img.copy(), img_shape=(h, w), ori_shape=(h, w),
                       seg_fields=[], img_id='a')
        out = _pipeline(seed)(results)
        meta = out['data_samples'].metainfo
        assert 'crop_bbox' in meta
        flips.add(bool(meta['flip']))
        aug = out['inputs'].float()  # (3, 40, 40): the "maps" of this view
        canon, valid = to_canonical(aug, meta, aug.shape[1:], (h, w))
        assert canon.shape == (3, h, w) and valid.any()
        ref = torch.from_numpy(img).permute(2, 0, 1).float()
        # compare away from the crop border
        inner = valid.clone()
        inner[1:-1, 1:-1] &= valid[:-2, 1:-1] & valid[2:, 1:-1] & \
            valid[1:-1, :-2] & valid[1:-1, 2:]
        err = (canon - ref).abs()[:, inner]
        assert err.mean() < 4.0, (seed, err.mean())
    assert flips == {True, False}


def test_no_augmentation_round_trips_at_feature_resolution():
    # linear ramps survive the up- and down-sampling exactly (away from borders)
    yy, xx = torch.meshgrid(torch.arange(6.), torch.arange(8.), indexing='ij')
    maps = torch.stack([yy / 5, xx / 7, torch.full((6, 8), 0.3)])
    meta = dict(ori_shape=(48, 64), img_shape=(48, 64))
    canon, valid = to_canonical(maps, meta, (48, 64), (6, 8))
    assert valid.all()
    torch.testing.assert_close(canon[:, 1:-1, 1:-1], maps[:, 1:-1, 1:-1],
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(canon[2], maps[2], atol=1e-6, rtol=0)
