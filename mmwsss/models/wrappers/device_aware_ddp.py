from mmengine.model import MMDistributedDataParallel

from mmwsss.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DeviceAwareDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper that also works for CPU modules (gloo backend).

    MMEngine's Runner always passes ``device_ids=[LOCAL_RANK]``, which torch rejects
    for a module on the CPU. This wrapper drops ``device_ids``/``output_device`` when
    the module's parameters are not on a CUDA device, and is otherwise identical.
    ``tools/train.py`` selects it automatically when CUDA is unavailable.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        params = list(module.parameters())
        on_cuda = bool(params) and params[0].is_cuda
        if not on_cuda:
            device_ids = None
            kwargs.pop('output_device', None)
        super().__init__(module=module, device_ids=device_ids, **kwargs)
