"""Evaluation: the confusion matrix with pixel accuracy and mIoU (``metrics``) and a model's evaluation over a data
set, one or many processes (``evaluator``)."""
from .evaluator import evaluate
from .label_metrics import LabelMetrics
from .metrics import ConfusionMatrix, format_metrics_table

__all__ = ["ConfusionMatrix", "LabelMetrics", "evaluate", "format_metrics_table"]
