"""The datasets' colour palettes: kept here for old imports; they live with the upstreams' datasets
(``segzoo.upstreams.palettes``)."""
from ..upstreams.palettes import ade20k_palette, cityscapes_palette, generic_palette, voc_palette

__all__ = ["voc_palette", "cityscapes_palette", "ade20k_palette", "generic_palette"]
