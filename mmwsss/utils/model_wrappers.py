"""One way to reach the model inside MMEngine's wrappers."""


def unwrap_model(model):
    """The model inside DDP / FSDP / MMEngine model wrappers and test-time
    augmentation wrappers (``BaseTTAModel``): what holds the weights and the
    method's attributes (``head``, ``data_preprocessor``, ``last_train_step``)."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model
