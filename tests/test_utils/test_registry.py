import pytest
import torch
from mmengine.registry import DefaultScope, init_default_scope

from mmwsss import registry as R
from mmwsss.utils import register_all_modules


def test_children_of_mmseg_registries():
    import mmseg.registry as S
    for name in R.__all__:
        reg = getattr(R, name)
        assert reg.scope == 'mmwsss', name
        if name == 'PSEUDO_LABEL_RULES':  # no MMSeg counterpart: a root registry
            assert reg.parent is None
            continue
        assert reg.parent is getattr(S, name), name


def test_pseudo_label_rules_resolve_by_name():
    from mmwsss.pseudo import SaliencyBackground
    rule = R.PSEUDO_LABEL_RULES.build(dict(type='SaliencyBackground'))
    assert isinstance(rule, SaliencyBackground)


def test_register_all_modules_sets_scope():
    register_all_modules(init_default_scope=True)
    assert DefaultScope.get_current_instance().scope_name == 'mmwsss'
    assert R.DATASETS.get('ToyWSSSDataset').__module__.startswith('mmwsss.')
    assert R.TRANSFORMS.get('PackWSSSInputs') is not None
    assert R.HOOKS.get('WSSSNumClassCheckHook') is not None


def test_mmwsss_type_resolves_in_scope():
    init_default_scope('mmwsss')
    from mmwsss.datasets import ToyWSSSDataset
    assert R.DATASETS.get('ToyWSSSDataset') is ToyWSSSDataset
    assert R.DATASETS.get('mmwsss.ToyWSSSDataset') is ToyWSSSDataset


def test_mmseg_type_through_parent():
    init_default_scope('mmwsss')
    from mmseg.models.decode_heads import FCNHead
    head = R.MODELS.build(
        dict(type='FCNHead', in_channels=8, channels=4, num_classes=3,
             num_convs=1))
    assert type(head) is FCNHead
    from mmseg.datasets.transforms import PackSegInputs
    assert R.TRANSFORMS.get('PackSegInputs') is PackSegInputs
    # and an mmseg metric through the parent
    from mmseg.evaluation import IoUMetric
    assert R.METRICS.get('IoUMetric') is IoUMetric


def test_mmpretrain_type_with_prefix():
    init_default_scope('mmwsss')
    vgg = R.MODELS.build(
        dict(type='mmpretrain.VGG', depth=11, num_classes=-1, out_indices=(4, )))
    from mmpretrain.models.backbones import VGG
    assert isinstance(vgg, VGG)
    out = vgg(torch.zeros(1, 3, 32, 32))
    assert out[-1].shape == (1, 512, 1, 1)
    # without the prefix, mmpretrain's VGG is not visible from mmwsss / mmseg
    with pytest.raises(KeyError, match='VGG'):
        R.MODELS.build(dict(type='VGG', depth=11))


def test_own_registration_does_not_leak_into_mmseg():
    import mmseg.registry as S
    init_default_scope('mmseg')
    assert S.DATASETS.get('ToyWSSSDataset') is None
    init_default_scope('mmwsss')


def test_root_registries_resolve_mmwsss_prefix():
    from mmengine.registry import DATASETS as ROOT_DATASETS
    from mmengine.registry import MODEL_WRAPPERS as ROOT_WRAPPERS
    from mmwsss.datasets import ToyWSSSDataset
    from mmwsss.models.wrappers import DeviceAwareDistributedDataParallel
    assert ROOT_DATASETS.get('mmwsss.ToyWSSSDataset') is ToyWSSSDataset
    assert ROOT_WRAPPERS.get('mmwsss.DeviceAwareDistributedDataParallel') is \
        DeviceAwareDistributedDataParallel
    # the parent chain is untouched: mmwsss -> mmseg -> mmengine
    assert R.DATASETS.parent.scope == 'mmseg'
