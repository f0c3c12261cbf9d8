"""The shared class-map operations: normalize_cams (OAA Eq. 2) and erase_inputs
(OAA++ hard drop, GAIN soft erasing), and the Grad-CAM hook of the head contract."""
import pytest
import torch
import torch.nn.functional as F

from mmwsss.models.utils import (CAM_EPS, erase_inputs, minmax_normalize_cams,
                                 normalize_cams)


def test_normalize_cams_eq2_and_valid_region():
    f = torch.tensor([[[-1., 2.], [4., 0.]], [[-3., -1.], [-2., -5.]]])
    a = normalize_cams(f)
    assert torch.equal(a[0], torch.tensor([[0., 2.], [4., 0.]]) / (4 + CAM_EPS))
    assert torch.equal(a[1], torch.zeros(2, 2))  # all non-positive: zeros, no NaN
    # the max over the valid pixels only; the result is not masked
    valid = torch.tensor([[True, True], [False, True]])
    b = normalize_cams(f, valid)
    assert torch.allclose(b[0], torch.tensor([[0., 1.], [2., 0.]]), atol=1e-5)


def test_minmax_normalize_cams():
    x = torch.tensor([[[1., 3.], [2., 1.]], [[0.5, 0.5], [0.5, 0.5]]])
    y = minmax_normalize_cams(x)
    assert torch.allclose(y[0], torch.tensor([[0., 1.], [.5, 0.]]))
    assert torch.equal(y[1], torch.zeros(2, 2))  # constant map


def test_erase_hard_mask_exact_and_padding_untouched():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 7, generator=g)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1:3, 2:4] = True
    out = erase_inputs(x, [mask, None], [(4, 5), (6, 7)], fill_value=-0.3)
    assert out is not x and torch.equal(x, x.clone())
    expect = x.clone()
    expect[0, :, 1:3, 2:4] = -0.3
    assert torch.equal(out, expect)  # bit-exact elsewhere, padding untouched
    # nothing to erase: the same tensor
    assert erase_inputs(x, [None, None], [(6, 7), (6, 7)]) is x
    # a hard mask of another size is resized and stays hard
    small = torch.ones(2, 2, dtype=torch.bool)
    out = erase_inputs(x, [small, None], [(4, 4), (6, 7)], 0.)
    assert torch.equal(out[0, :, :4, :4], torch.zeros(3, 4, 4))
    assert torch.equal(out[0, :, 4:], x[0, :, 4:])
    assert torch.equal(out[0, :, :, 4:], x[0, :, :, 4:])


def test_erase_soft_mask_is_gain_eq3_and_differentiable():
    x = torch.rand(1, 3, 5, 5) + 0.5
    t = torch.rand(1, 3, 3, requires_grad=True)  # attention at img_shape (3, 3)
    out = erase_inputs(x, [t], [(3, 3)])
    # I* = I - T(A) * I inside the image, the padding untouched
    torch.testing.assert_close(out[0, :, :3, :3], x[0, :, :3, :3] * (1 - t[0]))
    assert torch.equal(out[0, :, 3:], x[0, :, 3:])
    out.sum().backward()
    torch.testing.assert_close(t.grad[0], -x[0, :, :3, :3].sum(0))
    # a soft mask at feature resolution is resized bilinearly to img_shape
    low = torch.full((2, 2), 0.5)
    out = erase_inputs(x, [low], [(4, 4)])
    torch.testing.assert_close(out[0, :, :4, :4], x[0, :, :4, :4] * 0.5)


def test_erase_validation():
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match='larger than the input'):
        erase_inputs(x, [torch.ones(5, 5)], [(5, 5)])
    with pytest.raises(ValueError, match='masks'):
        erase_inputs(x, [None, None], [(4, 4)])
    with pytest.raises(ValueError, match='shape'):
        erase_inputs(x, [torch.ones(2, 4, 4)], [(4, 4)])


def test_classifier_runs_a_grad_cam_head_under_no_grad():
    """A head that asks for gradients (cam_requires_grad) gets them in predict,
    which runs under torch.no_grad: Grad-CAM of a non-linear head."""
    from mmwsss.models import WSClassifier
    from mmwsss.models.heads import BaseCAMHead
    from mmwsss.structures import WSSSDataSample

    class GradCAMHead(BaseCAMHead):
        cam_requires_grad = True

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.fc = torch.nn.Linear(16, self.num_classes)

        def forward(self, feats):
            return self._select(feats)

        def image_logits(self, f):  # non-linear: GMP then a linear layer
            return self.fc(torch.tanh(f).amax((2, 3)))

        def predict_maps(self, feats, data_samples=None):
            feats = self._select(feats)
            assert torch.is_grad_enabled() and feats.requires_grad
            logits = self.image_logits(feats)
            maps = []
            for c in range(self.num_classes):
                (g, ) = torch.autograd.grad(logits[:, c].sum(), feats,
                                            retain_graph=True)
                w = g.mean((2, 3), keepdim=True)
                maps.append(F.relu((w * feats).sum(1)))
            return torch.stack(maps, 1), logits

    torch.manual_seed(0)
    model = WSClassifier(
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=8,
                      base_channels=8, out_indices=(1, )),
        head=dict(type=GradCAMHead, num_classes=3),
        test_cfg=dict(scales=(1.0, ), flip=False, restrict='none')).eval()
    ds = WSSSDataSample(metainfo=dict(ori_shape=(32, 32), img_shape=(32, 32)))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = model.predict(x, [ds])[0]
    cams = out.pred_cams.data
    assert cams.shape == (3, 32, 32) and cams.max() > 0
    assert not cams.requires_grad and cams.max() <= 1
    # the same maps by hand
    feats = model.extract_feat(x)[0].detach().requires_grad_()
    maps, logits = model.head.predict_maps(feats)
    ref = F.interpolate(maps.detach(), size=(32, 32), mode='bilinear',
                        align_corners=False)[0]
    torch.testing.assert_close(cams, normalize_cams(ref))
    torch.testing.assert_close(out.pred_score, torch.sigmoid(logits[0]).detach())
