"""Evaluation: the confusion matrix with pixel accuracy and mIoU (``metrics``) and a model's evaluation over a data
set, one or many processes (``evaluator``)."""
from .evaluator import evaluate
from .metrics import ConfusionMatrix, format_metrics_table

__all__ = ["ConfusionMatrix", "evaluate", "format_metrics_table"]
