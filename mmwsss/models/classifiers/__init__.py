from .ws_classifier import WSClassifier

__all__ = ['WSClassifier']
