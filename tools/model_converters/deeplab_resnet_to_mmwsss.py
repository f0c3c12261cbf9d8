"""Convert a DeepLab / torchvision ResNet checkpoint to mmwsss ``DeepLabResNet`` names.

    python tools/model_converters/deeplab_resnet_to_mmwsss.py SRC DST [--backbone-only]

SRC: a kazuto1011/deeplab-pytorch checkpoint (``deeplabv1_resnet101-*.pth``
init files, ``deeplabv2_resnet101_msc-*.pth`` trained models; ``base.`` /
``module.`` / ``scale.`` prefixes are fine), a rulixiang/deeplab-pytorch
``DeepLabV2_ResNet101`` checkpoint, or a torchvision / mmseg ResNet state dict (see
:func:`mmwsss.models.backbones.resnet_weights.convert_deeplab_resnet_state_dict`).
The depth (50/101/152) is read from the blocks per stage, and every key of that
``DeepLabResNet`` must be present (shapes checked).

DST receives ``{'state_dict': {...}, 'meta': {...}}``, written atomically:

* default: ``backbone.<mmseg ResNet names>`` plus, when SRC has a DeepLab-v2
  classifier, ``decode_head.aspp.{i}.weight/bias`` (``DeepLabV2Head`` names): use it
  as ``load_from`` of a whole ``EncoderDecoder`` (the ASPP needs the same number of
  classes and branches as SRC; a different number of classes: use
  ``--backbone-only``);
* ``--backbone-only``: the backbone names without prefix, for
  ``backbone=dict(type='DeepLabResNet', init_cfg=dict(type='Pretrained',
  checkpoint=DST))``.
"""
import argparse
import os.path as osp

import mmwsss  # noqa: F401  (compat shims first)
import torch

from mmwsss.models.backbones.deeplab_resnet import DeepLabResNet
from mmwsss.models.backbones.resnet_weights import (
    check_resnet_state_dict, convert_deeplab_resnet_state_dict,
    extract_deeplab_aspp, infer_resnet_depth, infer_resnet_stage_blocks)
from mmwsss.utils.cli import (ToolError, error_line, load_checkpoint_file,
                              run_tool)
from mmwsss.utils.io import atomic_write

CONVERTER = 'tools/model_converters/deeplab_resnet_to_mmwsss.py'
# What the DeepLabV2 configs expect (caffe style, BGR, mean subtraction only) and what
# to change for a torchvision ResNet (docs/getting_started.md, weights table).
TORCHVISION_NOTE = (
    'note: the source has torchvision / OpenMMLab names. The MSRA caffe ResNet '
    '(e.g. resnet101_msra-6cc46731.pth, open-mmlab://detectron2/resnet101_caffe) fits '
    'the DeepLabV2 configs as they are (caffe style, BGR input, mean subtracted, no '
    "std). A torchvision ResNet (resnet101-*.pth) is pytorch-style and trained on RGB "
    'input normalised by the ImageNet mean/std: run the configs with --cfg-options '
    'model.backbone.style=pytorch model.data_preprocessor.bgr_to_rgb=True '
    "'model.data_preprocessor.mean=[123.675,116.28,103.53]' "
    "'model.data_preprocessor.std=[58.395,57.12,57.375]'")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a DeepLab (kazuto1011 / rulixiang) or torchvision '
        'ResNet checkpoint to mmwsss DeepLabResNet / DeepLabV2Head names')
    parser.add_argument('src', help='source checkpoint (local file)')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--backbone-only', action='store_true',
        help='write only the backbone, without the `backbone.` prefix (a '
        'Pretrained checkpoint for DeepLabResNet)')
    return parser.parse_args(argv)


def convert(ckpt, backbone_only=False):
    """``(state_dict, meta)`` for a loaded checkpoint; raises KeyError/ValueError."""
    backbone = convert_deeplab_resnet_state_dict(ckpt)
    depth = infer_resnet_depth(backbone)
    blocks = infer_resnet_stage_blocks(backbone)
    if depth is None or depth < 50:
        raise ValueError(
            f'blocks per stage {blocks} are not those of a ResNet-50/101/152 '
            '(Bottleneck) backbone')
    with torch.device('meta'):
        reference = DeepLabResNet(depth=depth).state_dict()
    check_resnet_state_dict(backbone, reference, f'a ResNet-{depth}')
    source = ckpt
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), dict):
            source = ckpt[key]
            break
    # kazuto1011 / rulixiang wrap every conv as `<unit>.conv.weight`.
    deeplab = any(
        isinstance(k, str) and k.endswith('.conv.weight') for k in source)
    fmt = 'deeplab' if deeplab else 'torchvision/mmseg'
    if isinstance(ckpt.get('meta'), dict):  # an mmwsss file converted again
        fmt = ckpt['meta'].get('source_format', fmt)
    meta = {'depth': depth, 'stage_blocks': list(blocks),
            'source_format': fmt,
            'converter': CONVERTER}
    if backbone_only:
        return dict(backbone), meta
    aspp = extract_deeplab_aspp(ckpt, prefix='decode_head.')
    state = {'backbone.' + k: v for k, v in backbone.items()}
    state.update(aspp)
    if aspp:
        weight = aspp['decode_head.aspp.0.weight']
        meta.update(aspp_branches=len(aspp) // 2,
                    num_classes=int(weight.shape[0]))
    return state, meta


def main(argv=None):
    args = parse_args(argv)
    ckpt = load_checkpoint_file(args.src)
    try:
        state, meta = convert(ckpt, args.backbone_only)
    except (KeyError, ValueError, TypeError) as e:
        # the messages name the keys / blocks that do not fit; add the file
        raise ToolError(f'{args.src}: {error_line(e)}') from e
    meta['source'] = osp.basename(args.src)
    state = {k: v.contiguous() for k, v in state.items()}
    with atomic_write(args.dst) as f:
        torch.save({'state_dict': state, 'meta': meta}, f)
    what = (f'ResNet-{meta["depth"]} backbone' +
            (f' + {meta["aspp_branches"]}-branch ASPP ({meta["num_classes"]} '
             'classes)' if 'aspp_branches' in meta else ''))
    if not args.backbone_only and 'aspp_branches' not in meta:
        what += ' (no ASPP classifier in the source)'
    print(f'wrote {len(state)} tensors ({what}) to {args.dst}')
    if meta['source_format'] != 'deeplab':
        print(TORCHVISION_NOTE)


if __name__ == '__main__':
    run_tool(main)
