"""GAIN (Li et al., "Tell Me Where to Look: Guided Attention Inference Network",
CVPR 2018) in MMEngine's training step and runner: one forward pass through an
OptimWrapper, and the L_am warm-up across ``--resume``."""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.structures import PixelData

from mmwsss.structures import WSSSDataSample
from tests.test_models.test_gain_head import K, _classifier, _resnet


def _item(i, label, size=(32, 32)):
    g = torch.Generator().manual_seed(i)
    img = (torch.rand(3, *size, generator=g) * 255).to(torch.uint8)
    ds = WSSSDataSample(metainfo=dict(img_id=str(i), img_shape=size,
                                      ori_shape=size))
    ds.gt_label = torch.tensor(label, dtype=torch.float32)
    return img, ds


def test_train_step_through_an_optim_wrapper():
    from mmengine.optim import OptimWrapper
    MessageHub.get_instance('test_gain_train_step')
    model = _classifier(ext_supervision=('pixel', 'box')).train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    imgs, samples = zip(*[_item(0, [1, 0, 1], (32, 28)),
                          _item(1, [0, 1, 0], (24, 32)),
                          _item(2, [0, 0, 0], (32, 32))])
    seg = torch.zeros(1, 32, 28, dtype=torch.long)
    seg[:, 8:20, 4:20] = 1
    seg[:, 0] = 255
    samples[0].gt_sem_seg = PixelData(data=seg)
    boxes = torch.zeros(K, 24, 32, dtype=torch.uint8)
    boxes[1, 4:20, 4:28] = 1
    samples[1].gt_box_mask = PixelData(data=boxes)
    samples[1].gt_saliency = PixelData(data=torch.rand(1, 24, 32))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log_vars = model.train_step(
        dict(inputs=list(imgs), data_samples=list(samples)), optim)
    assert set(log_vars) == {'loss', 'loss_cls', 'loss_am', 'loss_ext_pixel',
                             'loss_ext_box', 'am_mask_mean'}
    summed = sum(v for k, v in log_vars.items() if k.startswith('loss_'))
    assert torch.allclose(log_vars['loss'], summed)
    assert all(torch.isfinite(v) for v in log_vars.values())
    assert 0 < log_vars['am_mask_mean'] < 1
    changed = [n for n, p in model.named_parameters()
               if not torch.equal(p, before[n])]
    assert any(n.startswith('backbone.') for n in changed)
    assert 'head.cls_head.classifier.weight' in changed


class _RecordAM(Hook):
    def __init__(self):
        self.seen = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.seen.append((runner.iter, outputs['loss_am'].item()))


class _TinySet(torch.utils.data.Dataset):
    labels = ([1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img, ds = _item(i, self.labels[i])
        return dict(inputs=img, data_samples=ds)


def _runner(work_dir, max_iters, resume_from=None):
    from mmengine.runner import Runner
    record = _RecordAM()
    runner = Runner(
        model=dict(
            type='WSClassifier',
            data_preprocessor=dict(type='WSSSDataPreProcessor', mean=[0] * 3,
                                   std=[255] * 3, size_divisor=8),
            backbone=_resnet(),
            head=dict(type='GAINHead', am_start_iter=3,
                      cls_head=dict(type='CAMHead', in_channels=64,
                                    num_classes=K))),
        work_dir=work_dir,
        experiment_name=f'gain_{max_iters}_{resume_from is not None}',
        train_dataloader=dict(
            dataset=_TinySet(), batch_size=2, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[record],
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmwsss',
        log_level='WARNING')
    return runner, record


def test_am_start_iter_survives_resume(tmp_path):
    """L_am starts at the runner's iteration 3, also in a resumed run (the head
    reads the iteration from MMEngine's message hub, not its own counter)."""
    work_dir = str(tmp_path)
    runner, first = _runner(work_dir, max_iters=3)
    runner.train()
    assert [it for it, _ in first.seen] == [0, 1, 2]
    assert all(v == 0 for _, v in first.seen)
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)
    runner, resumed = _runner(work_dir, max_iters=4, resume_from=ckpt)
    runner.train()
    assert [it for it, _ in resumed.seen] == [2, 3]
    assert resumed.seen[0][1] == 0 and resumed.seen[1][1] > 0
