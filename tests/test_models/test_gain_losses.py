"""GAIN's losses: attention mining (Eq. 5), pixel attention (Eq. 7) and box
attention (Eq. 9) of Li et al., "Tell Me Where to Look: Guided Attention Inference
Network" (CVPR 2018 / TPAMI 2020)."""
import pytest
import torch

from mmwsss.models.losses import (AttentionMiningLoss, BoxAttentionLoss,
                                  PixelAttentionLoss, attention_mining_loss,
                                  box_attention_loss, pixel_attention_loss)
from mmwsss.registry import MODELS


def test_attention_mining_loss_is_the_mean_score_per_image():
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    classes = torch.tensor([0, 2, 1, 2])
    images = torch.tensor([0, 0, 3, 3])  # image 3 has two pairs
    s = torch.sigmoid(logits)
    ref = ((s[0, 0] + s[1, 2]) / 2 + (s[2, 1] + s[3, 2]) / 2) / 2
    assert attention_mining_loss(logits, classes, images).item() == \
        pytest.approx(ref.item(), rel=1e-6)
    # a single image with three pairs and one with one: per-image mean first
    images = torch.tensor([0, 0, 0, 1])
    ref = ((s[0, 0] + s[1, 2] + s[2, 1]) / 3 + s[3, 2]) / 2
    assert attention_mining_loss(logits, classes, images).item() == \
        pytest.approx(ref.item(), rel=1e-6)
    soft = torch.softmax(logits, 1)
    ref = ((soft[0, 0] + soft[1, 2] + soft[2, 1]) / 3 + soft[3, 2]) / 2
    assert attention_mining_loss(logits, classes, images, 'softmax').item() \
        == pytest.approx(ref.item(), rel=1e-6)
    ref = ((logits[0, 0] + logits[1, 2] + logits[2, 1]) / 3 + logits[3, 2]) / 2
    assert attention_mining_loss(logits, classes, images, 'logit').item() \
        == pytest.approx(ref.item(), rel=1e-6)
    # no pairs: 0, no NaN
    empty = attention_mining_loss(torch.zeros(0, 3), torch.zeros(0).long(),
                                  torch.zeros(0).long())
    assert empty.item() == 0
    with pytest.raises(ValueError, match='score'):
        attention_mining_loss(logits, classes, images, 'prob')
    m = MODELS.build(dict(type='AttentionMiningLoss', score='softmax',
                          loss_weight=2.))
    assert isinstance(m, AttentionMiningLoss) and m.loss_name == 'loss_am'
    assert m(logits, classes, images).item() == pytest.approx(
        2 * attention_mining_loss(logits, classes, images, 'softmax').item())


def test_pixel_attention_loss_values_and_ignore():
    maps = torch.tensor([[[0.2, 0.9], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    targets = torch.tensor([[[0., 1.], [0., 1.]], [[1., 0.], [0., 0.]]])
    images = torch.tensor([0, 1])
    valid = torch.ones(2, 2, 2, dtype=torch.bool)
    valid[0, 0, 0] = False  # label 255
    l0 = (0.1**2 + 0 + 0) / 3
    l1 = 0.25
    assert pixel_attention_loss(maps, targets, images, valid).item() == \
        pytest.approx((l0 + l1) / 2, rel=1e-6)
    # two classes of one image: 1/n over them
    assert pixel_attention_loss(maps, targets, torch.tensor([0, 0]),
                                valid).item() == pytest.approx((l0 + l1) / 2)
    # exact attention: 0; an all-ignored pair is left out
    assert pixel_attention_loss(targets, targets, images).item() == 0
    none = torch.zeros_like(valid)
    none[1] = True
    assert pixel_attention_loss(maps, targets, images, none).item() == \
        pytest.approx(l1)
    z = pixel_attention_loss(maps, targets, images, torch.zeros_like(valid))
    assert z.item() == 0 and torch.isfinite(z)
    # ignored pixels get no gradient
    m = maps.clone().requires_grad_()
    pixel_attention_loss(m, targets, images, valid).backward()
    assert m.grad[0, 0, 0] == 0 and m.grad[0, 0, 1] != 0
    assert isinstance(MODELS.build(dict(type='PixelAttentionLoss')),
                      PixelAttentionLoss)


def test_box_attention_loss_values_and_gradient_sign():
    sal = torch.tensor([[[0.8, 0.6], [0.1, 0.3]]])
    boxes = torch.tensor([[[1., 1.], [0., 0.]]])
    images = torch.tensor([0])
    # A = S inside the boxes and 0 outside: zero loss
    ideal = sal * boxes
    assert box_attention_loss(ideal, boxes, sal, images).item() == 0
    a = torch.tensor([[[0.5, 0.6], [0.4, -0.2]]], requires_grad=True)
    ref = ((0.5 - 0.8)**2 + 0 + 0.4**2 + 0.2**2) / 4
    loss = box_attention_loss(a, boxes, sal, images)
    assert loss.item() == pytest.approx(ref, rel=1e-6)
    loss.backward()
    # outside the boxes the gradient has the sign of A (pushed to 0)
    assert a.grad[0, 1, 0] > 0 and a.grad[0, 1, 1] < 0
    # inside: towards S
    assert a.grad[0, 0, 0] < 0 and a.grad[0, 0, 1] == 0
    # valid mask (padding) and reductions
    valid = torch.ones(1, 2, 2, dtype=torch.bool)
    valid[0, 1] = False
    assert box_attention_loss(a, boxes, sal, images, valid).item() == \
        pytest.approx((0.5 - 0.8)**2 / 2, rel=1e-6)
    m = MODELS.build(dict(type='BoxAttentionLoss', loss_weight=10.))
    assert isinstance(m, BoxAttentionLoss) and m.loss_name == 'loss_ext_box'
    assert m(a, boxes, sal, images).item() == pytest.approx(10 * ref, rel=1e-6)
    with pytest.raises(ValueError, match='shape'):
        box_attention_loss(a, boxes[:, :1], sal, images)
