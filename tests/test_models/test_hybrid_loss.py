"""Hybrid loss of the integral attention model (OAA+, [T] Eqs. 7-9; references:
docs/methods/oaa.md, section 'References')."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmwsss.models.losses.hybrid_attention_loss import (HybridAttentionLoss,
                                                         hybrid_attention_loss)


def _sig(v):
    return 1. / (1. + math.exp(-v))


def _logit(q):
    return math.log(q / (1 - q))


# class 0: q = .5, .75 / .25, sigmoid(2); p = .5, 1 / 0, 0
X0 = [[0., math.log(3.)], [-math.log(3.), 2.]]
P0 = [[.5, 1.], [0., 0.]]
# class 1: q = sigmoid(1), sigmoid(-1) / .5, .5; p = 0, 0 / 0, .2
X1 = [[1., -1.], [0., 0.]]
P1 = [[0., 0.], [0., .2]]


def test_hand_computed_1x1x2x2_both_reductions():
    x = torch.tensor([[X0]])
    p = torch.tensor([[P0]])
    l_pos = -(.5 * math.log(.5) + 1. * math.log(.75)) / 2
    l_neg = -(math.log(1 - .25) + math.log(1 - _sig(2.))) / 2
    for red in ('per_class', 'global'):
        loss = hybrid_attention_loss(x, p, reduction=red)
        assert loss.shape == ()
        assert loss.item() == pytest.approx(l_pos + l_neg, rel=1e-6)


def test_hand_computed_two_classes():
    x = torch.tensor([[X0, X1]])
    p = torch.tensor([[P0, P1]])
    # per class (Eq. 9): sum over classes of the two per-class means
    c0 = -(.5 * math.log(.5) + math.log(.75)) / 2 - \
        (math.log(.75) + math.log(1 - _sig(2.))) / 2
    c1 = -.2 * math.log(.5) - \
        (math.log(1 - _sig(1.)) + math.log(1 - _sig(-1.)) + math.log(.5)) / 3
    assert hybrid_attention_loss(x, p).item() == pytest.approx(c0 + c1,
                                                               rel=1e-6)
    # global ([C] ExLoss): 3 positives, 5 negatives pooled over the classes
    pos = -(.5 * math.log(.5) + math.log(.75) + .2 * math.log(.5)) / 3
    neg = -(math.log(.75) + math.log(1 - _sig(2.)) + math.log(1 - _sig(1.)) +
            math.log(1 - _sig(-1.)) + math.log(.5)) / 5
    assert hybrid_attention_loss(x, p, reduction='global').item() == \
        pytest.approx(pos + neg, rel=1e-6)


def test_per_class_is_mean_over_images_global_pools_the_batch():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5)
    p = torch.rand(2, 3, 4, 5) * (torch.rand(2, 3, 4, 5) > .5)
    per_image = [hybrid_attention_loss(x[i:i + 1], p[i:i + 1]) for i in (0, 1)]
    assert hybrid_attention_loss(x, p).item() == pytest.approx(
        sum(per_image).item() / 2, rel=1e-6)
    # global: one normalisation for the whole batch
    pos = p > 1e-3
    ref = (-(p * F.logsigmoid(x))[pos]).mean() + \
        (-F.logsigmoid(-x)[~pos]).mean()
    assert hybrid_attention_loss(x, p, reduction='global').item() == \
        pytest.approx(ref.item(), rel=1e-6)


def test_all_zero_targets_only_constraint_term():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 3, 3)
    p = torch.zeros_like(x)
    q = torch.sigmoid(x)
    per_class = (-torch.log(1 - q)).mean((2, 3)).sum()
    assert hybrid_attention_loss(x, p).item() == pytest.approx(
        per_class.item(), rel=1e-5)
    assert hybrid_attention_loss(x, p, reduction='global').item() == \
        pytest.approx((-torch.log(1 - q)).mean().item(), rel=1e-5)


def test_all_positive_targets_only_enhance_term():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 3, 3)
    p = torch.rand_like(x) * .9 + .1
    q = torch.sigmoid(x)
    per_class = (-p * torch.log(q)).mean((2, 3)).sum()
    assert hybrid_attention_loss(x, p).item() == pytest.approx(
        per_class.item(), rel=1e-5)
    assert hybrid_attention_loss(x, p, reduction='global').item() == \
        pytest.approx((-p * torch.log(q)).mean().item(), rel=1e-5)


@pytest.mark.parametrize('red', ['per_class', 'global'])
def test_empty_sets_no_nan(red):
    x = torch.randn(2, 2, 3, 3, requires_grad=True)
    for p in (torch.zeros(2, 2, 3, 3), torch.ones(2, 2, 3, 3)):
        loss = hybrid_attention_loss(x, p, reduction=red)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
        x.grad = None
    # nothing valid at all: 0, finite zero gradient
    valid = torch.zeros(2, 3, 3, dtype=torch.bool)
    loss = hybrid_attention_loss(x, torch.rand(2, 2, 3, 3), valid, red)
    loss.backward()
    assert loss.item() == 0 and torch.equal(x.grad, torch.zeros_like(x))


def test_extreme_logits_are_stable():
    x = torch.tensor([[[[100., -100.], [-100., 100.]]]], requires_grad=True)
    p = torch.tensor([[[[1., 1.], [0., 0.]]]])
    loss = hybrid_attention_loss(x, p)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert loss.item() == pytest.approx((100 + 100) / 2, rel=1e-4)


@pytest.mark.parametrize('red', ['per_class', 'global'])
def test_gradient_signs(red):
    torch.manual_seed(3)
    x = (torch.randn(2, 3, 4, 4) * 3).requires_grad_()
    p = torch.rand(2, 3, 4, 4) * (torch.rand(2, 3, 4, 4) > .4)
    hybrid_attention_loss(x, p, reduction=red).backward()
    pos = p > 1e-3
    assert pos.any() and (~pos).any()
    assert (x.grad[pos] < 0).all()  # pushes q up on N+
    assert (x.grad[~pos] > 0).all()  # pushes q down on N-


def test_enhance_term_is_monotone_decreasing():
    # on N+ the loss never penalises a high q: -p log q decreases in x
    xs = torch.linspace(-10, 10, 41)
    p = torch.full((1, 1, 1, 41), .3)
    losses = [hybrid_attention_loss(xs[i].view(1, 1, 1, 1),
                                    p[..., :1]).item() for i in range(41)]
    assert all(a > b for a, b in zip(losses, losses[1:]))


def test_pos_threshold_moves_pixels_to_constraint_region():
    x = torch.tensor([[[[.3, -.2, 1., .5, -1.]]]], requires_grad=True)
    p = torch.tensor([[[[.0005, .002, .05, .15, .5]]]])
    # tau = 0 (tolerance 1e-3): every p > 1e-3 is in N+, p = 5e-4 is in N-
    hybrid_attention_loss(x, p, pos_threshold=0.).backward()
    assert (x.grad[0, 0, 0] > 0).tolist() == [True, False, False, False, False]
    for tau, n_pos in ((0.01, 3), (0.1, 2), (0.2, 1), (0.6, 0)):
        x.grad = None
        loss = hybrid_attention_loss(x, p, pos_threshold=tau)
        loss.backward()
        assert int((x.grad < 0).sum()) == n_pos
        # the moved pixels count as p = 0 (there is no p factor in L-)
        ref = hybrid_attention_loss(x, torch.where(p > tau, p, 0.))
        assert loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_constraint_term_has_no_p_factor():
    """Regression test for the [I] Eq. 8 typo (a p factor makes L- = 0 on N-)."""
    x = torch.full((1, 1, 2, 2), .5)
    loss = hybrid_attention_loss(x, torch.zeros_like(x))
    assert loss.item() > 0
    assert loss.item() == pytest.approx(-math.log(1 - _sig(.5)), rel=1e-6)


def test_hybrid_optimum_is_q_one_while_mce_optimum_is_q_p():
    p_val = .2
    p = torch.tensor([[[[p_val, 0.]]]])
    x = torch.tensor([[[[_logit(p_val), 0.]]]], requires_grad=True)
    # at q = p the hybrid loss still pushes q up (toward 1) ...
    hybrid_attention_loss(x, p).backward()
    assert x.grad[0, 0, 0, 0] < -0.1
    # ... while MCE (Eq. 6) is stationary there: its optimum is q = p
    x2 = x.detach().clone().requires_grad_()
    F.binary_cross_entropy_with_logits(x2, p).backward()
    assert abs(x2.grad[0, 0, 0, 0].item()) < 1e-6
    # gradient descent on the hybrid loss drives that pixel's q toward 1
    z = x.detach().clone().requires_grad_()
    opt = torch.optim.SGD([z], lr=20.)
    for _ in range(200):
        opt.zero_grad()
        hybrid_attention_loss(z, p).backward()
        opt.step()
    assert torch.sigmoid(z[0, 0, 0, 0]) > .95
    assert torch.sigmoid(z[0, 0, 0, 1]) < .05


@pytest.mark.parametrize('red', ['per_class', 'global'])
def test_valid_mask_excludes_pixels(red):
    torch.manual_seed(4)
    x = torch.randn(2, 2, 3, 4)
    p = torch.rand(2, 2, 3, 4) * (torch.rand(2, 2, 3, 4) > .5)
    valid = torch.zeros(2, 3, 4, dtype=torch.bool)
    valid[:, :2, :3] = True
    loss = hybrid_attention_loss(x, p, valid, red)
    # equal to the loss on the valid sub-block
    ref = hybrid_attention_loss(x[..., :2, :3], p[..., :2, :3], reduction=red)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    # invalid pixels change nothing and get no gradient
    x2, p2 = x.clone(), p.clone()
    x2[..., 2:, :] = 50.
    p2[..., :, 3:] = 0.
    x2.requires_grad_()
    loss2 = hybrid_attention_loss(x2, p2, valid, red)
    loss2.backward()
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)
    assert (x2.grad.permute(0, 2, 3, 1)[~valid] == 0).all()


def test_module_weight_name_and_registry():
    from mmengine.registry import init_default_scope

    from mmwsss.registry import MODELS
    init_default_scope('mmwsss')
    x = torch.tensor([[X0, X1]])
    p = torch.tensor([[P0, P1]])
    mod = MODELS.build(dict(type='HybridAttentionLoss', loss_weight=2.,
                            reduction='global', loss_name='loss_iam'))
    assert isinstance(mod, HybridAttentionLoss)
    assert mod.loss_name == 'loss_iam'
    ref = hybrid_attention_loss(x, p, reduction='global')
    assert mod(x, p).item() == pytest.approx(2 * ref.item(), rel=1e-6)
    assert HybridAttentionLoss().reduction == 'per_class'
    assert HybridAttentionLoss().loss_name == 'loss_hybrid'


def test_argument_validation():
    with pytest.raises(ValueError, match='per_class.*global'):
        HybridAttentionLoss(reduction='mean')
    with pytest.raises(ValueError, match='per_class'):
        hybrid_attention_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2),
                              reduction='sum')
    with pytest.raises(ValueError, match='shape of the logits'):
        hybrid_attention_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r'\(N, K, h, w\)'):
        hybrid_attention_loss(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match='valid'):
        hybrid_attention_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2),
                              torch.ones(1, 1, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match='bool'):
        hybrid_attention_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2),
                              torch.ones(1, 2, 2))
