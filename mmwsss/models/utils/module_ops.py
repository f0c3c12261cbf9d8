"""Running a module a second time in one forward pass without side effects.

Used by the second stream of a head whose loss runs the network again on modified
inputs (GAIN's attention mining stream; Li et al., "Tell Me Where to Look: Guided
Attention Inference Network", CVPR 2018, Fig. 2; ``docs/extending.md``, section 1):

* :func:`bn_eval` puts the batch-norm layers of some modules in eval mode for the
  duration of a ``with`` block (the erased images then do not update the running
  statistics) and restores every layer's previous mode afterwards, also when the
  block raises;
* :func:`detached_call` calls a module with its parameters detached
  (``torch.func.functional_call``): the output still depends differentiably on the
  inputs, but no gradient reaches the parameters through this call. Nothing toggles
  ``requires_grad`` (which is unsafe under DistributedDataParallel) and nothing
  writes ``.grad``.
"""
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional

import torch.nn as nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm


@contextmanager
def bn_eval(*modules: Optional[nn.Module]) -> Iterator[None]:
    """Every ``_BatchNorm`` (BatchNorm1d/2d/3d, SyncBatchNorm, MMCV's) inside
    ``modules`` in eval mode within the block; the previous ``training`` flag of
    each layer is restored on exit (normal or by an exception). ``None`` entries
    are skipped."""
    saved = []
    for module in modules:
        if module is None:
            continue
        for m in module.modules():
            if isinstance(m, _BatchNorm):
                saved.append((m, m.training))
    try:
        for m, _ in saved:
            m.train(False)
        yield
    finally:
        for m, mode in saved:
            m.train(mode)


def detached_call(module: nn.Module, *args, method: Optional[str] = None,
                  **kwargs):
    """``module(*args, **kwargs)`` (or ``module.<method>(...)``) with every
    parameter replaced by its detached value (``torch.func.functional_call``).

    Gradients flow to the inputs, never to the parameters; buffers are the
    module's own (a batch-norm layer in train mode still updates its running
    statistics: combine with :func:`bn_eval` to avoid that).

    Args:
        module (nn.Module): the module.
        *args, **kwargs: its call arguments.
        method (str, optional): call this method of the module instead of
            ``forward`` (e.g. a head's ``image_logits``); it runs with the
            detached parameters as well.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}
    if method is None:
        return functional_call(module, params, args, kwargs)
    return functional_call(_MethodCall(module, method), {
        f'module.{name}': p
        for name, p in params.items()
    }, args, kwargs)


class _MethodCall(nn.Module):
    """A throw-away wrapper whose ``forward`` is one method of ``module`` (so that
    ``functional_call`` reparametrises the module around that method)."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module = module
        self._method = method

    def forward(self, *args, **kwargs):
        return getattr(self.module, self._method)(*args, **kwargs)


def freeze_modules(modules: Iterable[nn.Module]) -> None:
    """Put ``modules`` in eval mode and stop their parameters' gradients (a
    backbone's frozen stages; called again after every ``train()``)."""
    for m in modules:
        m.eval()
        for p in m.parameters():
            p.requires_grad = False
