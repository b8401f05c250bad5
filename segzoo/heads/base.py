"""The interface every head, built-in or third-party, implements."""
from __future__ import annotations

from typing import ClassVar, Optional, Sequence, Union

from torch import Tensor, nn

from ..upstream import FromCatalogue, PretrainedSpec, Upstream

__all__ = ["SegmentationHead", "HeadOutput"]

HeadOutput = Union[Tensor, Sequence[Tensor]]


class SegmentationHead(nn.Module):
    """Base class of segmentation heads.

    A head is constructed by ``SegmentationModel`` as
    ``HeadClass(in_channels, num_classes, align_corners=..., **head_kwargs)`` where ``in_channels`` maps
    each feature name the head declared in ``in_features`` (``"c1"`` .. ``"c4"``, strides 4 .. 32 before
    dilation; ``"c4"`` is the neck's output when a neck is used) to its channel count.

    ``forward(features, image)`` receives the dict of feature maps and, when ``needs_image`` is True,
    the normalised input image (else ``None``), ``(N, in_chans, H, W)``: 3 channels for RGB, 1 for greyscale,
    N bands for multispectral models. A head that reads the image and names an ``in_chans`` parameter in its
    ``__init__`` is constructed with ``in_chans=<the model's in_chans>``; one without it reads RGB only (a model
    of another ``in_chans`` with it is a ``ConfigError``). Heads that do not read the image never see it.
    It returns the main logits at feature resolution, or in training mode a sequence
    ``(main, *deep_supervision_outputs)``; the model upsamples everything.

    Conventions that the rest of segzoo relies on:
      * the final convolution(s) producing class logits are modules named ``classifier``, so a
        checkpoint with another ``num_classes`` loads with only those layers re-initialised;
      * a head that builds its own auxiliary outputs (BiSeNet) sets ``handles_aux = True`` and then
        receives ``aux=<bool>``; otherwise the model adds the standard FCN aux head on ``c3``.

    What a head knows besides its code is declared beside it, as plain data (see ``segzoo.upstream``): other
    spellings of its name, its forms in upstream checkpoints (head options and checkpoint-key rules) and its zoo
    entries. The zoo and the converter collect them from every registered head, built-in or third-party.

    Class attributes:
        in_features: Feature names the head reads.
        needs_image: Whether the head also needs the input image (see ``in_chans`` above).
        image_convs: Module names (in the head) of the convolutions that read the image, ``in_chans`` input
            channels: a checkpoint of another ``in_chans`` has their weights adapted as timm adapts a stem.
        handles_aux: Whether the head makes its own auxiliary outputs.
        citation: BibTeX of the head's paper (written into model cards).
        aux_loss_weight: The weight of each auxiliary output in the paper's loss, or None for the usual 0.4
            (training scripts use it when no weight is given).
        output_stride: The backbone output stride the head is designed for (BiSeNet: 32), or None when it
            works at any (its zoo entries and model names then choose).
        mask_classification: Whether the head classifies masks (Mask2Former): in training it returns a dict of
            per-query outputs, which the model hands on as it is and ``MaskClassificationLoss`` trains.
        takes_neck: Whether a neck may replace the features it reads (False for BiSeNet, whose context path is
            the backbone's own c3 and c4).
        aliases: Other spellings of the head's name in model names (``("psp",)`` for ``pspnet``).
        upstreams: The head's forms in upstream checkpoints: options and key rules (``segzoo.upstream.Upstream``).
        pretrained: The head's zoo entries (``segzoo.upstream.PretrainedSpec``), and ``FromCatalogue(upstream)``
            for the entries of an upstream's catalogue its forms build.
    """

    in_features: ClassVar[tuple[str, ...]] = ("c4",)
    needs_image: ClassVar[bool] = False
    image_convs: ClassVar[tuple[str, ...]] = ()
    handles_aux: ClassVar[bool] = False
    citation: ClassVar[str] = ""
    aux_loss_weight: ClassVar[float | None] = None
    output_stride: ClassVar[Optional[int]] = None
    takes_neck: ClassVar[bool] = True
    mask_classification: ClassVar[bool] = False
    aliases: ClassVar[tuple[str, ...]] = ()
    upstreams: ClassVar[tuple[Upstream, ...]] = ()
    pretrained: ClassVar[tuple[PretrainedSpec | FromCatalogue, ...]] = ()

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> HeadOutput:  # pragma: no cover
        raise NotImplementedError
