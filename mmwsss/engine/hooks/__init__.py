from .attention_store import AttentionStore
from .check_invalid_loss_hook import CheckInvalidLossHook
from .num_class_check_hook import WSSSNumClassCheckHook
from .oaa_hook import OAAHook, canonical_shape
from .reseed_hook import ReseedHook
from .stateful_hook import StatefulHook

__all__ = [
    'WSSSNumClassCheckHook', 'OAAHook', 'AttentionStore', 'canonical_shape',
    'CheckInvalidLossHook', 'StatefulHook', 'ReseedHook'
]
