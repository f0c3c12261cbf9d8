"""MSCEncoderDecoder (DeepLab-v2 MSC, kazuto1011/deeplab-pytorch ``libs/models/msc.py``)
and the test-time dense CRF (DenseCRFPostProcessor); docs/segmentation.md."""
import copy
import importlib.util

import mmwsss  # noqa: F401  (compat shims first)
import mmwsss.models.segmentors  # noqa: F401  (registers the segmentors)
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmwsss.models.segmentors import DenseCRFPostProcessor, MSCEncoderDecoder
from mmwsss.registry import MODELS

HAS_CRF = importlib.util.find_spec('pydensecrf') is not None
needs_crf = pytest.mark.skipif(not HAS_CRF, reason='pydensecrf is not installed')

SCALES = (1.0, 0.75, 0.5)
NUM_CLASSES = 3


@pytest.fixture(autouse=True)
def _mmwsss_scope():
    # BaseModel builds data_preprocessor (SegDataPreProcessor) in the default scope
    from mmengine.registry import init_default_scope
    init_default_scope('mmwsss')


def _cfg(type='MSCEncoderDecoder', num_classes=NUM_CLASSES, aux=False, **kwargs):
    cfg = dict(
        type=type,
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255,
            size_divisor=8,
            test_cfg=dict(size_divisor=8)),
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            base_channels=16,
            stem_channels=16,
            num_stages=4,
            out_indices=(2, 3),
            strides=(1, 2, 1, 1),
            dilations=(1, 1, 2, 4),
            contract_dilation=True,
            norm_cfg=dict(type='BN', requires_grad=True)),
        decode_head=dict(
            type='FCNHead',
            in_channels=128,
            in_index=1,
            channels=128,
            num_convs=0,
            concat_input=False,
            dropout_ratio=0,
            num_classes=num_classes,
            out_channels=num_classes,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    if aux:
        cfg['auxiliary_head'] = dict(
            type='FCNHead',
            in_channels=64,
            in_index=0,
            channels=64,
            num_convs=0,
            concat_input=False,
            dropout_ratio=0,
            num_classes=num_classes,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
    cfg.update(kwargs)
    return ConfigDict(cfg)


def _build(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = MODELS.build(_cfg(**kwargs))
    # non-trivial BN statistics/affines so that eval-mode outputs are not degenerate
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def _batch(n=2, h=48, w=64, seed=0, ori_shape=None, gt=True, img_path=None):
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        meta = dict(img_shape=(h, w), ori_shape=ori_shape or (h, w))
        if img_path is not None:
            meta['img_path'] = img_path
        ds = SegDataSample(metainfo=meta)
        if gt:
            label = torch.randint(0, NUM_CLASSES, (1, h, w), generator=g)
            label[:, :4, :4] = 255  # some ignored pixels
            ds.gt_sem_seg = PixelData(data=label)
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


def _metas(n, h, w):
    return [dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w))
            for _ in range(n)]


def _manual_scale_logits(model, inputs, scales=SCALES):
    out = []
    for s in scales:
        x = inputs if s == 1.0 else F.interpolate(
            inputs, scale_factor=s, mode='bilinear', align_corners=False)
        out.append(model.decode_head.forward(model.extract_feat(x)))
    return out


def _manual_fused(logits):
    size = logits[0].shape[2:]
    aligned = [logits[0]] + [
        F.interpolate(l, size=size, mode='bilinear', align_corners=False)
        for l in logits[1:]
    ]
    return torch.stack(aligned).max(0)[0], aligned


# ------------------------------------------------------------------------- config
def test_config_validation():
    assert MSCEncoderDecoder is MODELS.get('MSCEncoderDecoder')
    model = _build()
    assert model.with_msc and model.msc_scales == SCALES
    assert not _build(msc_scales=(1.0, )).with_msc
    assert not _build(msc_scales=None).with_msc
    with pytest.raises(ValueError, match='msc_loss'):
        MODELS.build(_cfg(msc_loss='max'))
    with pytest.raises(ValueError, match='positive'):
        MODELS.build(_cfg(msc_scales=(1.0, 0.0)))
    with pytest.raises(ValueError, match='duplicates'):
        MODELS.build(_cfg(msc_scales=(1.0, 1.0)))
    with pytest.raises(KeyError, match='preset'):
        MODELS.build(_cfg(test_cfg=dict(mode='whole', crf='no_such_preset')))
    # CRF configs are resolved at build time (no pydensecrf needed)
    m = MODELS.build(_cfg(test_cfg=dict(mode='whole', crf='deeplab_resnet')))
    proc = m._get_crf_postprocessor()
    assert isinstance(proc, DenseCRFPostProcessor)
    assert proc.crf.bilateral == dict(sxy=67.0, srgb=3.0, compat=4.0)
    assert proc.crf.gaussian == dict(sxy=1.0, compat=3.0)
    assert proc.crf.iterations == 10
    m = MODELS.build(_cfg(test_cfg=dict(
        mode='whole', crf=dict(preset='deeplab_vgg', iterations=5))))
    proc = m._get_crf_postprocessor()
    assert proc.crf.iterations == 5 and proc.crf.bilateral['sxy'] == 121
    m = MODELS.build(_cfg(test_cfg=dict(
        mode='whole', crf=dict(type='DenseCRFPostProcessor', crf='deeplab_vgg'))))
    assert m._get_crf_postprocessor().crf.bilateral['sxy'] == 121
    # changing test_cfg.crf afterwards is picked up
    m.test_cfg.crf = None
    assert m._get_crf_postprocessor() is None
    proc = MODELS.build(dict(type='DenseCRFPostProcessor', crf='deeplab_resnet'))
    assert isinstance(proc, DenseCRFPostProcessor)
    with pytest.raises(ValueError, match='None'):
        DenseCRFPostProcessor(crf=None)


# ---------------------------------------------------------------------- inference
@torch.no_grad()
def test_encode_decode_is_max_over_scales():
    model = _build().eval()
    inputs = torch.randn(2, 3, 48, 64)
    out = model.encode_decode(inputs, _metas(2, 48, 64))
    assert out.shape == (2, NUM_CLASSES, 48, 64)

    logits = _manual_scale_logits(model, inputs)
    assert [tuple(l.shape[2:]) for l in logits] == [(6, 8), (5, 6), (3, 4)]
    fused, aligned = _manual_fused(logits)
    expected = F.interpolate(fused, size=(48, 64), mode='bilinear',
                             align_corners=False)
    torch.testing.assert_close(out, expected)
    # the max is a real fusion: every scale wins somewhere
    winner = torch.stack(aligned).argmax(0)
    assert set(winner.unique().tolist()) == {0, 1, 2}
    # tensor mode: fused logits at the scale-1 logits' size
    torch.testing.assert_close(model(inputs, mode='tensor'), fused)

    # test_cfg.msc_scales overrides the scales at test time
    model.test_cfg.msc_scales = (1.0, )
    single = model.encode_decode(inputs, _metas(2, 48, 64))
    torch.testing.assert_close(
        single, F.interpolate(logits[0], size=(48, 64), mode='bilinear',
                              align_corners=False))


@torch.no_grad()
def test_no_msc_equals_encoder_decoder():
    msc = _build(msc_scales=None).eval()
    ref = MODELS.build(_cfg(type='EncoderDecoder')).eval()
    ref.load_state_dict(msc.state_dict())
    data = _batch(ori_shape=(60, 80))
    out_msc = msc.test_step(copy.deepcopy(data))
    out_ref = ref.test_step(copy.deepcopy(data))
    for a, b in zip(out_msc, out_ref):
        torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)
    inputs = torch.randn(1, 3, 40, 56)
    torch.testing.assert_close(msc(inputs, mode='tensor'), ref(inputs, mode='tensor'))
    # training losses: same keys and values
    msc.train()
    ref.train()
    d1 = msc.data_preprocessor(copy.deepcopy(data), True)
    d2 = ref.data_preprocessor(copy.deepcopy(data), True)
    with torch.enable_grad():
        l1, l2 = msc.loss(**d1), ref.loss(**d2)
    assert set(l1) == set(l2) == {'decode.loss_ce', 'decode.acc_seg'}
    for k in l1:
        torch.testing.assert_close(l1[k], l2[k])


@torch.no_grad()
def test_predict_original_size_whole_and_slide():
    model = _build().eval()
    # 45x61 input (padded to 48x64 by the preprocessor), original image 90x122
    data = _batch(h=45, w=61, ori_shape=(90, 122), gt=False)
    out = model.test_step(copy.deepcopy(data))
    assert len(out) == 2
    for ds in out:
        assert ds.pred_sem_seg.data.shape == (1, 90, 122)
        assert ds.seg_logits.data.shape == (NUM_CLASSES, 90, 122)
        assert ds.pred_sem_seg.data.dtype == torch.int64
        assert ds.pred_sem_seg.data.max() < NUM_CLASSES

    # slide with one crop covering the whole (padded) input == whole
    model.test_cfg = type(model.test_cfg)(mode='slide', crop_size=(48, 64),
                                          stride=(32, 32))
    out_slide = model.test_step(copy.deepcopy(data))
    for a, b in zip(out, out_slide):
        torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data)
    # real sliding windows: every crop goes through MSC
    model.test_cfg = type(model.test_cfg)(mode='slide', crop_size=(32, 32),
                                          stride=(16, 24))
    calls = []
    orig = model._msc_forward

    def spy(inputs, scales):
        calls.append((tuple(inputs.shape[2:]), scales))
        return orig(inputs, scales)

    model._msc_forward = spy
    out_slide = model.test_step(_batch(n=1, h=45, w=61, ori_shape=(90, 122),
                                       gt=False))
    assert out_slide[0].pred_sem_seg.data.shape == (1, 90, 122)
    assert len(calls) == 6 and all(c == ((32, 32), SCALES) for c in calls)


@torch.no_grad()
def test_seg_tta_model_flip():
    model = _build().eval()
    tta = MODELS.build(dict(type='SegTTAModel', module=model))
    # SegTTAModel copies img_path to the merged sample (the file is not read)
    base = _batch(n=2, h=48, w=64, ori_shape=(48, 64), gt=False,
                  img_path='unused.png')
    flipped = copy.deepcopy(base)
    for img, ds in zip(flipped['inputs'], flipped['data_samples']):
        img.copy_(img.flip(-1))
        ds.set_metainfo(dict(flip=True, flip_direction='horizontal'))
    for ds in base['data_samples']:
        ds.set_metainfo(dict(flip=False, flip_direction=None))
    tta_data = dict(
        inputs=[[a, b] for a, b in zip(base['inputs'], flipped['inputs'])],
        data_samples=[[a, b] for a, b in zip(base['data_samples'],
                                             flipped['data_samples'])])
    merged = tta.test_step(copy.deepcopy(tta_data))
    assert len(merged) == 2

    # manual: softmax average of the unflipped view and of the flipped view's
    # logits, flipped back
    x = model.data_preprocessor(copy.deepcopy(base))['inputs']
    xf = model.data_preprocessor(copy.deepcopy(flipped))['inputs']
    assert torch.equal(xf, x.flip(-1))
    metas = _metas(2, 48, 64)
    p = model.encode_decode(x, metas).softmax(1)
    pf = model.encode_decode(xf, metas).flip(-1).softmax(1)
    expected = ((p + pf) / 2).argmax(1)
    for i, ds in enumerate(merged):
        assert ds.pred_sem_seg.data.shape == (1, 48, 64)
        assert torch.equal(ds.pred_sem_seg.data[0], expected[i])
    # the flipped view is not trivially equal to the unflipped one
    assert not torch.allclose(p, pf)


# ----------------------------------------------------------------------- training
def _train_data(model, seed=0):
    data = _batch(n=2, h=45, w=61, seed=seed)  # padded to 48x64 (label pad 255)
    return model.data_preprocessor(data, True)


@pytest.mark.parametrize('aux', [False, True])
def test_msc_loss_all(aux):
    model = _build(aux=aux).train()
    data = _train_data(model)
    losses = model.loss(**data)
    loss_keys = {k for k in losses if 'loss' in k}
    expected = {'decode.s1.0.loss_ce', 'decode.s0.75.loss_ce',
                'decode.s0.5.loss_ce', 'decode.fused.loss_ce'}
    if aux:
        expected.add('aux.loss_ce')
    assert loss_keys == expected
    assert {k for k in losses if 'acc_seg' in k} >= {'decode.fused.acc_seg'}
    for k in loss_keys:
        assert losses[k].ndim == 0 and torch.isfinite(losses[k])
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total)

    # manual: CE of each scale's logits and of the max-fused ones, summed
    inputs, samples = data['inputs'], data['data_samples']
    logits = _manual_scale_logits(model, inputs)
    fused, _ = _manual_fused(logits)
    manual = sum(
        model.decode_head.loss_by_feat(l, samples)['loss_ce']
        for l in logits + [fused])
    if aux:
        feats = model.extract_feat(inputs)
        manual = manual + model.auxiliary_head.loss_by_feat(
            model.auxiliary_head.forward(feats), samples)['loss_ce']
    torch.testing.assert_close(total, manual)
    torch.testing.assert_close(
        losses['decode.s0.75.loss_ce'],
        model.decode_head.loss_by_feat(logits[1], samples)['loss_ce'])

    model.zero_grad()
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0


def test_msc_loss_mean_and_fused():
    model = _build().train()
    data = _train_data(model)
    total_all, _ = model.parse_losses(model.loss(**copy.deepcopy(data)))

    model.msc_loss = 'mean'
    losses = model.loss(**copy.deepcopy(data))
    assert len([k for k in losses if 'loss' in k]) == 4
    total_mean, _ = model.parse_losses(losses)
    torch.testing.assert_close(total_mean, total_all / 4)

    model.msc_loss = 'fused'
    losses = model.loss(**copy.deepcopy(data))
    assert [k for k in losses if 'loss' in k] == ['decode.loss_ce']
    logits = _manual_scale_logits(model, data['inputs'])
    fused, _ = _manual_fused(logits)
    torch.testing.assert_close(
        losses['decode.loss_ce'],
        model.decode_head.loss_by_feat(fused, data['data_samples'])['loss_ce'])
    losses['decode.loss_ce'].backward()


def test_train_step_runs():
    from mmengine.optim import OptimWrapper
    model = _build()
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    log_vars = model.train_step(_batch(n=2, h=45, w=61), optim)
    assert 'loss' in log_vars
    assert torch.isfinite(torch.as_tensor(log_vars['loss']).detach())
    assert 'decode.fused.loss_ce' in log_vars


# ---------------------------------------------------------------------------- CRF
H, W, EDGE = 40, 60, 27  # colour edge: columns < EDGE are class 0, >= EDGE class 1


def _two_region_image(tmp_path):
    import mmcv
    rng = np.random.default_rng(0)
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :EDGE] = (200, 40, 40)
    img[:, EDGE:] = (40, 40, 200)
    img = np.clip(img.astype(int) + rng.integers(-2, 3, img.shape), 0,
                  255).astype(np.uint8)
    path = str(tmp_path / 'two_regions.png')
    mmcv.imwrite(mmcv.rgb2bgr(img), path)
    gt = np.zeros((H, W), np.int64)
    gt[:, EDGE:] = 1
    return img, path, gt


def _blurry_logits(seed=0):
    """Low-resolution (H/4, W/4) logits whose boundary is blurred and shifted 4 px
    to the right of the colour edge, plus noise."""
    g = torch.Generator().manual_seed(seed)
    h, w = H // 4, W // 4
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * 4  # full-res x of centres
    ramp = (xs - (EDGE + 4)) / 6.0
    l1 = ramp.expand(h, w) + 0.3 * torch.randn(h, w, generator=g)
    return torch.stack([-l1, l1])[None]  # (1, 2, h, w)


@needs_crf
def test_crf_postprocessor_snaps_to_colour_edge(tmp_path):
    img, path, gt = _two_region_image(tmp_path)
    logits = F.interpolate(_blurry_logits(), size=(H, W), mode='bilinear',
                           align_corners=False)[0]
    proc = DenseCRFPostProcessor(crf='deeplab_resnet')
    labels, probs = proc(img, logits)
    assert labels.shape == (H, W) and labels.dtype == torch.int64
    assert probs.shape == (2, H, W) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(0), torch.ones(H, W), atol=1e-4, rtol=0)
    assert torch.equal(labels, probs.argmax(0))
    acc_before = (logits.argmax(0).numpy() == gt).mean()
    acc_after = (labels.numpy() == gt).mean()
    assert acc_before < 0.95
    assert acc_after > acc_before and acc_after > 0.99
    # loading the image from the sample's img_path gives the same image
    ds = SegDataSample(metainfo=dict(img_path=path, ori_shape=(H, W)))
    np.testing.assert_array_equal(proc.load_image(ds, (H, W)), img)
    with pytest.raises(ValueError, match='size'):
        proc.load_image(ds, (H + 1, W))


@needs_crf
def test_segmentor_crf_postprocess(tmp_path):
    img, path, gt = _two_region_image(tmp_path)
    low = _blurry_logits()
    meta = dict(img_path=path, ori_shape=(H, W), img_shape=(H // 4, W // 4),
                padding_size=[0, 0, 0, 0])
    results = {}
    for crf in (None, 'deeplab_resnet'):
        model = _build(num_classes=2, msc_scales=None,
                       test_cfg=dict(mode='whole', crf=crf)).eval()
        out = model.postprocess_result(low.clone(), [SegDataSample(metainfo=meta)])
        results[crf] = out[0]
    plain, crf = results[None], results['deeplab_resnet']
    assert crf.pred_sem_seg.data.shape == (1, H, W)
    assert crf.seg_logits.data.shape == (2, H, W)
    acc_plain = (plain.pred_sem_seg.data[0].numpy() == gt).mean()
    acc_crf = (crf.pred_sem_seg.data[0].numpy() == gt).mean()
    assert acc_crf > acc_plain and acc_crf > 0.99
    # seg_logits = log Q: its softmax is the CRF marginals, its argmax the labels
    q = crf.seg_logits.data.softmax(0)
    torch.testing.assert_close(q, crf.seg_logits.data.exp(), atol=1e-5, rtol=1e-4)
    assert torch.equal(crf.seg_logits.data.argmax(0), crf.pred_sem_seg.data[0])


@needs_crf
def test_msc_predict_with_crf_and_tta(tmp_path):
    import mmcv
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    path = str(tmp_path / 'img.png')
    mmcv.imwrite(mmcv.rgb2bgr(img), path)
    model = _build(test_cfg=dict(mode='whole', crf='deeplab_resnet')).eval()
    inp = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)  # BGR CHW
    view = dict(img_path=path, ori_shape=(48, 64), img_shape=(48, 64),
                flip=False, flip_direction=None)
    fview = dict(view, flip=True, flip_direction='horizontal')

    def run(inp, meta):
        return model.test_step(dict(inputs=[inp], data_samples=[
            SegDataSample(metainfo=meta)]))[0]

    with torch.no_grad():
        out = run(inp, view)
        out_f = run(inp.flip(-1), fview)
        assert out.pred_sem_seg.data.shape == (1, 48, 64)
        # == the CRF (on the original RGB image) of the MSC logits without CRF
        model.test_cfg.crf = None
        plain = run(inp, view)
        model.test_cfg.crf = 'deeplab_resnet'
        labels, probs = DenseCRFPostProcessor('deeplab_resnet')(
            img, plain.seg_logits.data)
        assert torch.equal(out.pred_sem_seg.data[0], labels)
        torch.testing.assert_close(out.seg_logits.data.exp(), probs, atol=1e-5,
                                   rtol=1e-4)

        tta = MODELS.build(dict(type='SegTTAModel', module=model))
        merged = tta.test_step(dict(
            inputs=[[inp, inp.flip(-1)]],
            data_samples=[[SegDataSample(metainfo=view),
                           SegDataSample(metainfo=fview)]]))
    assert merged[0].pred_sem_seg.data.shape == (1, 48, 64)
    # SegTTAModel averages softmax(log Q) = the per-view CRF marginals
    q_mean = (out.seg_logits.data.softmax(0) + out_f.seg_logits.data.softmax(0)) / 2
    assert torch.equal(merged[0].pred_sem_seg.data[0], q_mean.argmax(0))


def test_crf_needs_img_path():
    proc = DenseCRFPostProcessor(crf='deeplab_resnet')
    with pytest.raises(KeyError, match='img_path'):
        proc.load_image(SegDataSample(metainfo=dict(ori_shape=(8, 8))))
    with pytest.raises(KeyError, match='img_path'):
        proc.process_sample(dict(ori_shape=(8, 8)), torch.zeros(2, 8, 8))
    model = _build(test_cfg=dict(mode='whole', crf='deeplab_resnet')).eval()
    with torch.no_grad(), pytest.raises(KeyError, match='img_path'):
        model.predict(torch.randn(1, 3, 32, 32))
    with torch.no_grad(), pytest.raises(KeyError, match='img_path'):
        model.test_step(_batch(n=1, h=32, w=32, gt=False))


def test_crf_postprocessor_rejects_single_channel():
    proc = DenseCRFPostProcessor(crf='deeplab_resnet')
    with pytest.raises(ValueError, match='C >= 2'):
        proc(np.zeros((8, 8, 3), np.uint8), torch.zeros(1, 8, 8))


@needs_crf
def test_crf_tta_model_averages_views_then_runs_one_crf(tmp_path):
    from mmseg.models.segmentors import SegTTAModel

    from mmwsss.models.segmentors import CRFSegTTAModel
    img, path, gt = _two_region_image(tmp_path)
    full = F.interpolate(_blurry_logits(), size=(H, W), mode='bilinear',
                         align_corners=False)[0]

    def views():
        out = []
        for k, shift in enumerate((0.0, 0.5)):  # two "views" with different logits
            ds = SegDataSample(metainfo=dict(img_path=path, ori_shape=(H, W)))
            ds.seg_logits = PixelData(data=full + shift * (k - 0.5))
            out.append(ds)
        return [out]

    seg = _build(msc_scales=None)
    plain = SegTTAModel(module=seg).merge_preds(views())[0]
    no_crf = CRFSegTTAModel(module=seg, crf=None).merge_preds(views())[0]
    assert torch.equal(no_crf.pred_sem_seg.data.reshape(H, W),
                       plain.pred_sem_seg.data.reshape(H, W))
    merged = CRFSegTTAModel(module=seg, crf='deeplab_resnet').merge_preds(
        views())[0]
    avg = sum(v.seg_logits.data.softmax(0) for v in views()[0]) / 2
    labels, _ = DenseCRFPostProcessor(crf='deeplab_resnet')(
        img, torch.log(avg.clamp_min(1e-8)))
    got = merged.pred_sem_seg.data.reshape(H, W)
    assert torch.equal(got, labels)
    assert (got.numpy() == gt).mean() > (avg.argmax(0).numpy() == gt).mean()
