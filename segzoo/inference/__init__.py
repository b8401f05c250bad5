"""Inference: segment image files (``predict``), test-time augmentation and sliding windows (``tta``), image
reading (``image_io``), class maps as images (``visualize``), ``optimize_for_inference`` (``optimize``) and
bfloat16 (``precision``), the compile and ONNX Runtime paths (``compiled``, ``onnx_runtime``), export to ONNX / ``.pt2``
(``export``) and ``segzoo.optimize``'s choice among the paths (``paths``).

The names below are imported on first use: reading images (``segzoo.data`` does) must not import the optimizer,
whose ``torch.compiler`` hooks pull in ``torch._dynamo``.
"""
from ..lazy import lazy_attributes

_EXPORTS = {
    "IMAGE_EXTENSIONS": ".image_io", "load_image": ".image_io", "to_tensor": ".image_io",
    "FusedConv2d": ".optimize", "fold_batch_norm": ".optimize", "is_optimized_for_inference": ".optimize",
    "optimize_for_inference": ".optimize",
    # paths.optimize is segzoo.optimize (here ``optimize`` is the optimize_for_inference subpackage)
    "PRECISIONS": ".paths", "RUNTIMES": ".paths", "OptimizeReport": ".paths", "PathTrial": ".paths",
    "argmax_agreement": ".precision", "cpu_has_fast_bf16": ".precision", "inference_precision": ".precision",
    "inference_runtime": ".precision",
    "PredictResult": ".predict", "collect_inputs": ".predict", "predict": ".predict",
    "predict_logits": ".tta", "sliding_window_logits": ".tta", "window_starts": ".tta",
    "colorize": ".visualize", "overlay": ".visualize", "overlay_labels": ".visualize",
    "legend": ".visualize",
    "decode_logits": ".decode",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
