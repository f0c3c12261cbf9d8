"""Every config under configs/ parses, and its model builds (random weights, no
checkpoint is read); the `mmseg::` inheritance resolves."""
import glob
import os.path as osp

import pytest

from tests.conftest import REPO

CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def _strip_pretrained(node):
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        if node.get('pretrained'):
            node['pretrained'] = None
        for v in node.values():
            _strip_pretrained(v)
    elif isinstance(node, list):
        for v in node:
            _strip_pretrained(v)


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path):
    import torch
    from mmengine.config import Config

    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(path)
    assert cfg.model and cfg.train_dataloader and cfg.train_cfg
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(
        cfg.model)
    _strip_pretrained(model_cfg)
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_mmseg_deeplabv3plus_config_is_inherited():
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'deeplab',
                 'deeplabv3plus_r101_voc12aug_pseudo.py'))
    assert cfg.model.decode_head.type == 'DepthwiseSeparableASPPHead'
    assert cfg.train_dataloader.dataset.type == 'VOCWSSSDataset'
    assert cfg.train_dataloader.dataset.data_prefix.pseudo_label_path


SEG_CONFIGS = [p for p in CONFIGS if osp.basename(p).startswith(
    ('largefov_', 'deeplabv2_'))]


@pytest.mark.parametrize('path', SEG_CONFIGS,
                         ids=[osp.relpath(p, REPO) for p in SEG_CONFIGS])
def test_seg_config_tta_builds(path):
    """`tools/test.py CONFIG CKPT --tta` (multi-scale + flip + one CRF): the TTA
    pipeline's transforms and the CRF of the TTA model build."""
    import torch
    from mmengine.config import Config

    from mmwsss.registry import MODELS, TRANSFORMS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(path)
    assert cfg.tta_model.type == 'CRFSegTTAModel'
    for t in cfg.tta_pipeline:
        TRANSFORMS.build(t)
    tta = cfg.tta_model.to_dict()
    module = cfg.model.to_dict()
    _strip_pretrained(module)
    tta['module'] = module
    with torch.device('meta'):
        model = MODELS.build(tta)
    assert model.crf is not None
    # one CRF after the merge, none per view
    assert model.module.test_cfg.get('crf') is None


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_data_preprocessor_stacks_a_training_batch(path):
    """The model's data preprocessor stacks a training batch of images of different
    sizes (MMSeg asserts that exactly one of `size` / `size_divisor` is set: the
    VOC configs set neither and crashed at the first step)."""
    import torch
    from mmengine.config import Config
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData

    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(path)
    dp_cfg = cfg.model.data_preprocessor.to_dict()
    dp = MODELS.build(dp_cfg)
    size = dp_cfg.get('size') or (64, 72)
    shapes = [(size[0] - 5, size[1]), (size[0], size[1] - 9)]
    samples = []
    for h, w in shapes:
        ds = SegDataSample()
        ds.gt_sem_seg = PixelData(data=torch.zeros(1, h, w, dtype=torch.long))
        ds.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        samples.append(ds)
    data = dict(inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
                        for h, w in shapes], data_samples=samples)
    out = dp(data, training=True)
    assert out['inputs'].shape[0] == 2
    assert out['inputs'].shape[-2:] == tuple(max(s[i] for s in shapes)
                                             for i in range(2))


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_basics_hold(path):
    """The tools' schedule / loader check accepts every shipped config."""
    from mmwsss.utils.launch import check_config_basics, load_config
    cfg = load_config(path)
    check_config_basics(cfg, 'train')
    check_config_basics(cfg, 'test')


@pytest.mark.parametrize('rel,targets', [
    ('oaa/oaa_iam_vgg16_voc.py', 'work_dirs/oaa_vgg16_voc/oaa_maps'),
    ('oaa/oaa_drop_iam_vgg16_voc.py', 'work_dirs/oaa_drop_vgg16_voc/oaa_maps'),
    ('toy/iam_r18_toy.py', 'work_dirs/oaa_r18_toy/oaa_maps'),
    ('toy/iam_drop_r18_toy.py', 'work_dirs/oaa_drop_r18_toy/oaa_maps'),
])
def test_iam_configs_set_the_attention_folder_as_a_dataset_key(rel, targets):
    """The attention-target folder is ``data_prefix.attention_path``; a variant
    changes that one key (``data_prefix`` merges key by key through ``_base_``) and
    keeps the pipeline, whose ``LoadAttentionTargets`` has no ``cam_dir``."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', rel))
    assert cfg.attention_targets == targets
    ds = cfg.train_dataloader.dataset
    assert ds.data_prefix.attention_path == targets
    assert ds.data_prefix.img_path == 'JPEGImages' and ds.data_prefix.seg_map_path
    (t, ) = [t for t in ds.pipeline if t['type'] == 'LoadAttentionTargets']
    assert 'cam_dir' not in t
    # only training reads the targets
    for split in ('val', 'test'):
        assert 'attention_path' not in cfg[f'{split}_dataloader'].dataset.data_prefix
    with open(osp.join(REPO, 'configs', rel)) as f:
        assert 'cam_dir' not in f.read()
