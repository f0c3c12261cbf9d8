"""DenseCRF wrapper: equality with direct pydensecrf calls (``DenseCRF2D(W, H, C)``),
presets, validation; docs/pseudo_labels.md, section 'Dense CRF'."""
import numpy as np
import pytest

from mmwsss.pseudo import CRF_PRESETS, DenseCRF, build_crf

dcrf = pytest.importorskip('pydensecrf.densecrf')
from pydensecrf.utils import unary_from_labels, unary_from_softmax  # noqa: E402


def _direct_softmax(img, probs, t, gauss, bil, clip=1e-5):
    """PSA ``crf_inference`` written out."""
    c, h, w = probs.shape
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(
        np.ascontiguousarray(unary_from_softmax(probs, clip=clip)))
    d.addPairwiseGaussian(sxy=gauss[0], compat=gauss[1])
    d.addPairwiseBilateral(
        sxy=bil[0], srgb=bil[1], rgbim=np.ascontiguousarray(img),
        compat=bil[2])
    return np.array(d.inference(t)).reshape(c, h, w)


def _direct_labels(img, labels, n, t, gauss, bil, gt_prob):
    """irn ``crf_inference_label`` written out."""
    h, w = img.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(
        unary_from_labels(labels, n, gt_prob=gt_prob, zero_unsure=False))
    d.addPairwiseGaussian(sxy=gauss[0], compat=gauss[1])
    d.addPairwiseBilateral(
        sxy=bil[0], srgb=bil[1], rgbim=np.ascontiguousarray(np.copy(img)),
        compat=bil[2])
    return np.argmax(np.array(d.inference(t)).reshape(n, h, w), axis=0)


def _inputs(h=37, w=53, c=4, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # smooth-ish scores so the pairwise terms matter; unnormalised on purpose
    probs = rng.random((c, h, w)).astype(np.float32)
    probs[0, :, : w // 2] += 0.5
    return img, probs


def test_equals_direct_pydensecrf_non_square():
    img, probs = _inputs()
    img0, probs0 = img.copy(), probs.copy()
    crf = DenseCRF(iterations=5)
    q = crf(img, probs)
    ref = _direct_softmax(img, probs, 5, (3, 3), (80, 13, 10))
    assert q.dtype == np.float32 and q.shape == (4, 37, 53)
    np.testing.assert_array_equal(q, ref.astype(np.float32))
    np.testing.assert_allclose(q.sum(0), 1, atol=1e-5)
    # inputs untouched
    np.testing.assert_array_equal(img, img0)
    np.testing.assert_array_equal(probs, probs0)


@pytest.mark.parametrize('preset', sorted(CRF_PRESETS))
def test_presets_match_direct(preset):
    p = CRF_PRESETS[preset]
    img, probs = _inputs(20, 31, 3, seed=1)
    q = build_crf(preset)(img, probs)
    g, b = p['gaussian'], p['bilateral']
    ref = _direct_softmax(img, probs, p['iterations'], (g['sxy'], g['compat']),
                          (b['sxy'], b['srgb'], b['compat']))
    np.testing.assert_array_equal(q, ref.astype(np.float32))


def test_preset_values():
    assert CRF_PRESETS['psa'] == dict(
        iterations=3, gaussian=dict(sxy=3, compat=3),
        bilateral=dict(sxy=80, srgb=13, compat=10))
    assert CRF_PRESETS['irn_label']['gt_prob'] == 0.7
    assert CRF_PRESETS['irn_label']['bilateral'] == dict(
        sxy=50, srgb=5, compat=10)
    assert CRF_PRESETS['vwl']['gaussian'] == dict(sxy=1, compat=3)
    assert CRF_PRESETS['vwl']['bilateral'] == dict(sxy=64, srgb=3, compat=4)
    assert CRF_PRESETS['deeplab_vgg']['bilateral'] == dict(
        sxy=121, srgb=5, compat=4)
    assert CRF_PRESETS['deeplab_resnet']['gaussian'] == dict(sxy=1, compat=3)
    assert CRF_PRESETS['deeplab_resnet']['bilateral'] == dict(
        sxy=67, srgb=3, compat=4)


def test_infer_labels_equals_direct():
    img, probs = _inputs(29, 41, 3, seed=2)
    labels = probs.argmax(0)
    crf = build_crf('irn_label')
    out = crf.infer_labels(img, labels, 3)
    ref = _direct_labels(img, labels, 3, 10, (3, 3), (50, 5, 10), 0.7)
    assert out.dtype == np.int64 and out.shape == (29, 41)
    np.testing.assert_array_equal(out, ref)
    # a single label: nothing to infer
    assert not crf.infer_labels(img, np.zeros((29, 41), int), 1).any()
    with pytest.raises(ValueError, match='out of range'):
        crf.infer_labels(img, labels, 2)


def test_uniform_image_strong_unary_returns_argmax():
    rng = np.random.default_rng(3)
    img = np.full((16, 24, 3), 128, np.uint8)
    lab = rng.integers(0, 3, (16, 24))
    probs = np.full((3, 16, 24), 0.01, np.float32)
    np.put_along_axis(probs, lab[None], 0.98, axis=0)
    # weak pairwise terms relative to a strong unary
    crf = DenseCRF(iterations=10, gaussian=dict(sxy=1, compat=0.1),
                   bilateral=dict(sxy=10, srgb=10, compat=0.1))
    q = crf(img, probs)
    np.testing.assert_array_equal(q.argmax(0), lab)
    np.testing.assert_allclose(q.sum(0), 1, atol=1e-5)


def test_non_contiguous_inputs():
    img, probs = _inputs(30, 22, 3, seed=4)
    # transposed views: (22, 30, 3) image and (3, 22, 30) probs
    img_t = img.transpose(1, 0, 2)
    probs_t = probs.transpose(0, 2, 1)
    assert not img_t.flags['C_CONTIGUOUS']
    assert not probs_t.flags['C_CONTIGUOUS']
    crf = DenseCRF(iterations=3)
    q = crf(img_t, probs_t)
    ref = crf(np.ascontiguousarray(img_t), np.ascontiguousarray(probs_t))
    np.testing.assert_array_equal(q, ref)
    ref2 = _direct_softmax(np.ascontiguousarray(img_t),
                           np.ascontiguousarray(probs_t), 3, (3, 3),
                           (80, 13, 10))
    np.testing.assert_array_equal(q, ref2.astype(np.float32))
    # flipped (negative strides) image and float64 probs
    q2 = crf(img[:, ::-1], probs[:, :, ::-1].astype(np.float64))
    assert q2.shape == (3, 30, 22)
    labels_t = probs_t.argmax(0)
    assert crf.infer_labels(img_t, labels_t, 3).shape == (22, 30)


def test_disabled_terms_and_build():
    img, probs = _inputs(10, 12, 2, seed=5)
    crf = DenseCRF(iterations=0, gaussian=None, bilateral=None)
    q = crf(img, probs)
    p = np.clip(probs, 1e-5, 1)
    np.testing.assert_allclose(q, p / p.sum(0), rtol=1e-4)
    c = build_crf(dict(type='DenseCRF', preset='psa', iterations=7,
                       bilateral=dict(srgb=5)))
    assert c.iterations == 7 and c.bilateral == dict(sxy=80, srgb=5,
                                                     compat=10)
    assert build_crf(None) is None and build_crf(c) is c
    assert build_crf(dict(preset='vwl', gaussian=None)).gaussian is None
    with pytest.raises(KeyError, match='nope'):
        build_crf('nope')
    with pytest.raises(ValueError, match='bogus'):
        build_crf(dict(bogus=1))
    with pytest.raises(ValueError, match='gt_prob'):
        DenseCRF(gt_prob=1.0)


def test_validation_errors():
    img, probs = _inputs(12, 14, 2, seed=6)
    crf = DenseCRF(iterations=1)
    with pytest.raises(ValueError, match=r'\(12, 10\).*\(12, 14\)'):
        crf(img, probs[:, :, :10])
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8.*float'):
        crf(img.astype(np.float32), probs)
    with pytest.raises(ValueError, match=r'\(H, W, 3\) uint8.*\(12, 14\)'):
        crf(img[..., 0], probs)
    with pytest.raises(ValueError, match='C = 0'):
        crf(img, probs[:0])
    with pytest.raises(ValueError, match='non-finite'):
        crf(img, np.full_like(probs, np.nan))
    with pytest.raises(ValueError, match=r'labels size .*\(12, 13\)'):
        crf.infer_labels(img, np.zeros((12, 13), int), 2)


def test_missing_pydensecrf_gives_install_hint(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'pydensecrf.densecrf', None)
    img, probs = _inputs(6, 7, 2)
    with pytest.raises(ImportError, match=r'pip install pydensecrf2==1\.1'):
        DenseCRF()(img, probs)


# ------------------------------------------------------------- channel order
def _colour_image(h=48, w=64, seed=0):
    """A colourful, smooth-ish image with a distinct block (RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1)
    img[10:30, 20:40] = [200, 30, 60]
    img = img + rng.integers(-20, 20, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _colour_probs(h=48, w=64, c=3, seed=0):
    probs = np.random.default_rng(seed + 1).random((c, h, w)).astype(np.float32)
    probs[1, 10:30, 20:40] += 0.3
    return probs


@pytest.mark.parametrize('preset', ['psa', 'irn_label', 'vwl', 'deeplab_resnet'])
def test_channel_order_changes_the_result(preset):
    """pydensecrf's permutohedral filtering depends on the order of the colour
    channels: BGR input gives other marginals and other labels than RGB."""
    img, probs = _colour_image(), _colour_probs()
    bgr = np.ascontiguousarray(img[..., ::-1])
    crf = build_crf(preset)
    q_rgb, q_bgr = crf(img, probs), crf(bgr, probs)
    assert np.abs(q_rgb - q_bgr).max() > 0.1
    assert (q_rgb.argmax(0) != q_bgr.argmax(0)).mean() > 0.005
    labels = probs.argmax(0)
    assert (crf.infer_labels(img, labels, 3)
            != crf.infer_labels(bgr, labels, 3)).any()
    # and the wrapper is pydensecrf on the image it was given
    p = CRF_PRESETS[preset]
    g, b = p['gaussian'], p['bilateral']
    direct = _direct_softmax(img, probs, p['iterations'], (g['sxy'], g['compat']),
                             (b['sxy'], b['srgb'], b['compat']))
    np.testing.assert_allclose(q_rgb, direct, atol=1e-6)


@pytest.fixture
def png_case(tmp_path):
    """An RGB PNG (lossless: PIL and OpenCV decode the same pixels) and its CAMs."""
    from PIL import Image

    from mmwsss.utils.cam_io import cam_path, load_cam, save_cam
    img = _colour_image()
    img_path = str(tmp_path / 'x.png')
    Image.fromarray(img).save(img_path)
    cams = _colour_probs(c=2)
    cams /= cams.max(axis=(1, 2), keepdims=True)
    path = cam_path(str(tmp_path / 'cams'), 'x')
    save_cam(path, cams, [3, 7], num_classes=20)
    return img, img_path, str(tmp_path / 'cams'), load_cam(path)


def _rule_cfg():
    return dict(type='ThresholdBackground', threshold=0.3, crf='psa')


def _expected(rec, img):
    from mmwsss.pseudo import build_pseudo_label_rule
    rule = build_pseudo_label_rule(_rule_cfg())
    rgb = rule(rec, image=img)
    bgr = rule(rec, image=np.ascontiguousarray(img[..., ::-1]))
    assert (rgb != bgr).any()  # the case tells the two orders apart
    return rgb


def test_pseudo_label_job_passes_rgb(png_case, tmp_path):
    """tools/make_pseudo_labels.py's code path: the label equals the rule's CRF on
    the RGB image (= pydensecrf on RGB, test above), not on BGR."""
    from mmwsss.pseudo.job import PseudoLabelTask, run_pseudo_label_job
    from mmwsss.utils.cam_io import cam_path
    from mmwsss.utils.io import read_label_png
    img, img_path, cams, rec = png_case
    out = str(tmp_path / 'out' / 'x.png')
    task = PseudoLabelTask(img_id='x', cam_path=cam_path(cams, 'x'),
                           out_path=out, img_path=img_path)
    assert run_pseudo_label_job([task], _rule_cfg(), 20,
                                progress=False)['written'] == 1
    np.testing.assert_array_equal(read_label_png(out), _expected(rec, img))


def test_cam_to_pseudo_label_passes_rgb(png_case):
    """On the fly: mmcv's LoadImageFromFile gives BGR, CAMToPseudoLabel hands the
    CRF RGB."""
    from mmcv.transforms import Compose

    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    img, img_path, cams, rec = png_case
    pipe = Compose([dict(type='LoadImageFromFile'),
                    dict(type='LoadCAMFromFile', cam_dir=cams),
                    dict(type='CAMToPseudoLabel', rule=_rule_cfg())])
    res = pipe(dict(img_path=img_path, img_id='x'))
    np.testing.assert_array_equal(res['img'], img[..., ::-1])  # mmcv: BGR
    np.testing.assert_array_equal(res['gt_seg_map'], _expected(rec, img))


def test_test_time_crf_reads_rgb(png_case):
    from mmwsss.models.segmentors.crf_postprocessor import DenseCRFPostProcessor
    img, img_path, _, _ = png_case
    loaded = DenseCRFPostProcessor('psa').load_image(dict(img_path=img_path))
    np.testing.assert_array_equal(loaded, img)
