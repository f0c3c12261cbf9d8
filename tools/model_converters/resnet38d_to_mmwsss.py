"""Convert a ResNet-38d checkpoint (PSA / SEAM / EDAM) to mmwsss ``ResNet38d`` names.

    python tools/model_converters/resnet38d_to_mmwsss.py SRC DST [--prefix backbone.]

SRC is one of:

* a PyTorch file with the PSA / EDAM names (``conv1a.weight``,
  ``b2.bn_branch2a.weight``, ..., ``bn7.running_var``): the ImageNet weights as
  converted by PSA's ``convert_mxnet_to_torch`` (see below), or a PSA / SEAM / EDAM
  training checkpoint (their heads ``fc8``, ``f8_*``, ``f9``, ``mask_layer``,
  ``d_d``, ``embedding``, ``trans_list``, ``fc_list`` are dropped), or an mmwsss
  model checkpoint (only its ``backbone.*`` keys are used);
* a PyTorch file with the raw MXNet names (``res2a_branch1_weight``,
  ``bn2a_branch2a_gamma``, ...), e.g. ``torch.save({k: torch.from_numpy(
  v.asnumpy()) for k, v in mxnet.nd.load(PARAMS).items()}, SRC)``;
* the MXNet file ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params`` itself (the ImageNet
  ResNet-38 "A1" of Wu et al., "Wider or Deeper", released by the official ResNet-38
  repository itijyou/ademxapp and used by PSA / SEAM / EDAM) — only where the
  ``mxnet`` package can be imported.

See :func:`mmwsss.models.backbones.convert_resnet38d_state_dict` for the names.
DST receives ``{'state_dict': {...}, 'meta': {...}}`` with every ResNet38d key
(plus ``--prefix``), written atomically. Use it as
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` of ``ResNet38d`` (no prefix),
or as ``load_from`` of a whole model with ``--prefix backbone.``.

Getting SRC without network access on the training machine: MXNet is needed once,
anywhere (it is no longer maintained: use an old environment where ``import mxnet``
works, e.g. mxnet 1.x with numpy < 1.24). With the ``.params`` file at hand, either
run this tool there on the ``.params`` file directly, or, from a checkout of
jiwoon-ahn/psa (or allenwu97/EDAM, same function)::

    python -c "import torch; from network.resnet38d import convert_mxnet_to_torch; \\
      p = 'ilsvrc-cls_rna-a1_cls1000_ep-0001.params'; \\
      torch.save(convert_mxnet_to_torch(p), 'resnet38d_imagenet_psa.pth')"

and copy ``resnet38d_imagenet_psa.pth`` (about 420 MB) to the training machine, where
this tool converts it as SRC without MXNet.
"""
import argparse
import os.path as osp

import mmwsss  # noqa: F401  (compat shims first)
import torch

from mmwsss.models.backbones import convert_resnet38d_state_dict
from mmwsss.utils.cli import (ToolError, error_line, load_checkpoint_file,
                              run_tool, save_converted_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint (local file)')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--prefix', default='',
        help="prefix for the output keys, e.g. 'backbone.' (default: none)")
    return parser.parse_args(argv)


def load_mxnet_params(path: str) -> dict:
    """The arrays of an MXNet ``.params`` file (needs the ``mxnet`` package)."""
    try:
        import mxnet
    except ImportError as e:
        raise ToolError(
            f'{path}: reading an MXNet .params file needs the mxnet package, '
            'which is not installed; convert it once where mxnet is available '
            '(PSA\'s network.resnet38d.convert_mxnet_to_torch + torch.save, '
            'see this tool\'s --help) and pass the resulting .pth file') from e
    if not osp.isfile(path):
        raise ToolError(f'{path}: no such file')
    try:
        arrays = mxnet.nd.load(path)
    except mxnet.base.MXNetError as e:
        raise ToolError(f'{path}: cannot read the MXNet parameters: '
                        f'{error_line(e)}; download the file again') from e
    if not isinstance(arrays, dict):
        raise ToolError(f'{path}: the MXNet file holds an unnamed list of '
                        'arrays, not named parameters')
    return {k: torch.from_numpy(v.asnumpy()) for k, v in arrays.items()}


def main(argv=None):
    args = parse_args(argv)
    if args.src.endswith('.params'):
        ckpt = load_mxnet_params(args.src)
    else:
        ckpt = load_checkpoint_file(args.src)
    n = save_converted_checkpoint(
        args.src, args.dst, ckpt, convert_resnet38d_state_dict,
        prefix=args.prefix,
        converter='tools/model_converters/resnet38d_to_mmwsss.py')
    print(f'wrote {n} tensors to {args.dst}')


if __name__ == '__main__':
    run_tool(main)
