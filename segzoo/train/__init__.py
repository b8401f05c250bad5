"""Training building blocks: losses, optimizer groups, the poly schedule, distributed helpers, a sharded sampler,
data loaders, the training step, a metrics log and atomic, resumable checkpoints (safetensors + JSON, never pickle).

The distributed helpers live in ``segzoo.distributed`` (the weights layer uses them too) and are re-exported here.
"""
from ..distributed import (
    DistributedContext,
    SharedError,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    broadcast_buffers,
    cleanup_distributed,
    init_distributed,
    is_main_process,
    rank0_first,
    run_collectively,
    unwrap_model,
)
from .loaders import eval_loader, start_epoch, train_loader
from .loop import train_step
from .losses import (
    LOSSES,
    CombinedLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    LovaszLoss,
    MaskClassificationLoss,
    OhemCrossEntropy,
    SegmentationLoss,
    TverskyLoss,
    build_loss,
)
from .metrics_log import MetricsLog, json_safe
from .optim import build_optimizer, param_groups, scaled_lr
from .sampler import ShardedSampler
from .schedule import PolyLR
from .state import (
    TrainingState,
    capture_rng,
    find_checkpoint,
    load_checkpoint,
    restore_rng,
    resume_from,
    save_checkpoint,
)

__all__ = [
    "LOSSES",
    "CombinedLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "DistributedContext",
    "FocalLoss",
    "LovaszLoss",
    "MaskClassificationLoss",
    "MetricsLog",
    "OhemCrossEntropy",
    "PolyLR",
    "SegmentationLoss",
    "ShardedSampler",
    "SharedError",
    "TrainingState",
    "TverskyLoss",
    "all_gather_objects",
    "all_reduce_mean",
    "barrier",
    "broadcast_buffers",
    "build_loss",
    "build_optimizer",
    "capture_rng",
    "cleanup_distributed",
    "eval_loader",
    "find_checkpoint",
    "init_distributed",
    "is_main_process",
    "json_safe",
    "load_checkpoint",
    "param_groups",
    "rank0_first",
    "restore_rng",
    "resume_from",
    "run_collectively",
    "save_checkpoint",
    "scaled_lr",
    "start_epoch",
    "train_loader",
    "train_step",
    "unwrap_model",
]
