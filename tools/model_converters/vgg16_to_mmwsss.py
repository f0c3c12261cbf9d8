"""Convert a VGG-16 checkpoint to mmwsss ``DeepLabVGG16`` names.

    python tools/model_converters/vgg16_to_mmwsss.py SRC DST [--prefix backbone.]

SRC: a torchvision ``vgg16`` state dict (e.g. ``vgg16-397923af.pth``), a Caffe-style
conversion (``conv1_1.weight`` ... ``conv5_3.bias``) or a DeepLab-LargeFOV / OAA PyTorch
checkpoint; classifier / fc6–fc8 / extra conv weights are dropped (see
:func:`mmwsss.models.backbones.convert_vgg16_state_dict`). DST receives
``{'state_dict': {...}, 'meta': {...}}`` with the 13 convs as ``features.{i}.*``
(plus ``--prefix``), written atomically. Use it with
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` of ``DeepLabVGG16`` (no prefix),
or as ``load_from`` of a whole model with ``--prefix backbone.``.
"""
import argparse
import os.path as osp

import mmwsss  # noqa: F401  (compat shims first)
import torch

from mmwsss.models.backbones import convert_vgg16_state_dict
from mmwsss.utils.cli import (ToolError, error_line, load_checkpoint_file,
                              run_tool)
from mmwsss.utils.io import atomic_write


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a VGG-16 checkpoint to DeepLabVGG16 names')
    parser.add_argument('src', help='source checkpoint (local file)')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--prefix', default='',
        help="prefix for the output keys, e.g. 'backbone.' (default: none)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    ckpt = load_checkpoint_file(args.src)
    try:
        state = convert_vgg16_state_dict(ckpt)
    except (KeyError, ValueError, TypeError) as e:
        # the messages name the keys that do not fit; add the file
        raise ToolError(f'{args.src}: {error_line(e)}') from e
    state = {args.prefix + k: v.contiguous() for k, v in state.items()}
    out = {'state_dict': state,
           'meta': {'source': osp.basename(args.src),
                    'converter': 'tools/model_converters/vgg16_to_mmwsss.py'}}
    with atomic_write(args.dst) as f:
        torch.save(out, f)
    print(f'wrote {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    run_tool(main)
