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

import mmwsss  # noqa: F401  (compat shims first)
from mmwsss.models.backbones import convert_vgg16_state_dict
from mmwsss.utils.cli import (load_checkpoint_file, run_tool,
                              save_converted_checkpoint)


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
    n = save_converted_checkpoint(
        args.src, args.dst, ckpt, convert_vgg16_state_dict, prefix=args.prefix,
        converter='tools/model_converters/vgg16_to_mmwsss.py')
    print(f'wrote {n} tensors to {args.dst}')


if __name__ == '__main__':
    run_tool(main)
