from .ws_classifier import WSClassifier, enable_train_step_record

__all__ = ['WSClassifier', 'enable_train_step_record']
