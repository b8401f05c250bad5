"""The training criterion: a loss applied to the main output and, weighted, to every aux output."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from .combined import build_loss, parse_loss_spec


class SegmentationLoss(nn.Module):
    """A loss of the main output plus the weighted loss of every aux output.

    ``loss = L(main) + sum_i aux_weight_i * L(aux_i)`` with ``L = build_loss(loss, ...)`` (cross entropy by
    default).

    Args:
        loss: A :func:`~segzoo.train.losses.build_loss` spec: ``"ce"``, ``"ohem"``, ``"ce+dice"``,
            ``"ce:1+lovasz:0.5"``...
        aux_weight: Weight of every aux output (a float), or one weight per aux output (a sequence).
        ignore_index: Target value of unlabelled pixels.
        ohem: Use OHEM cross entropy (``OhemCrossEntropy``) as the loss: the same as ``loss="ohem"``; an error with
            a loss spec other than ``"ce"`` or ``"ohem"``.
        ohem_threshold: ``OhemCrossEntropy``'s ``threshold``, for every ``ohem`` term.
        ohem_min_kept: ``OhemCrossEntropy``'s ``min_kept``, for every ``ohem`` term.
        mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"`` (see :func:`build_loss`).
        class_weight: One weight per class (label), given to every term.
        **loss_options: Options of the loss terms, as :func:`build_loss` takes them (``gamma=``, ``smooth=``...).
    """

    def __init__(self, loss: str = "ce", aux_weight: float | Sequence[float] = 0.4, ignore_index: int = 255,
                 ohem: bool = False, ohem_threshold: float = 0.7, ohem_min_kept: float = 1 / 16,
                 mode: str = "multiclass", class_weight: Sequence[float] | None = None, **loss_options: Any):
        super().__init__()
        if not isinstance(loss, str):
            raise ConfigError(f"loss must be a loss spec string like 'ce' or 'ce+dice', got {loss!r} "
                              "(aux_weight is the second argument)")
        terms = parse_loss_spec(loss)
        if ohem:
            if [name for name, _ in terms] not in (["ce"], ["ohem"]):
                raise ConfigError(f"ohem=True makes the loss OHEM cross entropy, which conflicts with loss={loss!r}: "
                                  "use an 'ohem' term in the spec instead (e.g. 'ohem+dice')")
            weight = terms[0][1]
            loss = "ohem" if weight == 1 else f"ohem:{weight!r}"
        if ohem or any(name == "ohem" for name, _ in terms):
            # ohem_* configure the ohem terms, unless loss_options set them explicitly (threshold=, min_kept=).
            if "threshold" not in loss_options:
                loss_options["ohem_threshold"] = ohem_threshold
            if "min_kept" not in loss_options:
                loss_options["ohem_min_kept"] = ohem_min_kept
        self.aux_weight = aux_weight if isinstance(aux_weight, (int, float)) else tuple(aux_weight)
        self.ignore_index = ignore_index
        self.ohem = ohem
        self.loss = loss
        self.criterion = build_loss(loss, mode=mode, ignore_index=ignore_index, class_weight=class_weight,
                                    **loss_options)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, aux_weight={self.aux_weight}, ignore_index={self.ignore_index}, ohem={self.ohem}"

    def _aux_weights(self, num_aux: int) -> Sequence[float]:
        if isinstance(self.aux_weight, (int, float)):
            return [float(self.aux_weight)] * num_aux
        if len(self.aux_weight) != num_aux:
            raise ValueError(f"aux_weight has {len(self.aux_weight)} weights but the model returned "
                             f"{num_aux} aux output(s)")
        return self.aux_weight

    def forward(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            outputs: Logits ``(N, C, H, W)``, or ``(main, *aux)`` as models return them in training mode.
                Logits of another size than the target are resized bilinearly (``align_corners=True``,
                segzoo's default) first.
            target: The target of the loss's mode: ``(N, H, W)`` class indices (multiclass) or 0/1 (binary), or
                ``(N, C, H, W)`` 0/1 (multilabel); ``ignore_index`` for unlabelled pixels.

        Returns:
            A float32 scalar.
        """
        outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        if not outputs:
            raise ValueError("no outputs to compute a loss of")
        weights = [1.0, *self._aux_weights(len(outputs) - 1)]
        size = target.shape[-2:]
        loss = None
        for weight, logits in zip(weights, outputs):
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
            term = self.criterion(logits, target)
            loss = term if loss is None else loss + weight * term
        return loss
