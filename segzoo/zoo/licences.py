"""What a zoo entry's licence lets a user do, in one flag: weights under a non-commercial licence, or whose terms
segzoo cannot classify (no licence stated, or ``other``), are flagged wherever the entry is shown (``segzoo list
--pretrained``, ``segzoo info``, the model card) so that nobody ships them unawares."""
from __future__ import annotations

from typing import Optional

__all__ = ["OPEN_LICENSES", "license_flag"]

# Hub licence ids that allow commercial use (attribution and notice terms aside).
OPEN_LICENSES = frozenset({
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "mpl-2.0",
    "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "unlicense",
})


def license_flag(license: str, terms: str = "") -> Optional[str]:
    """``"non-commercial"`` for a non-commercial licence (a Creative Commons ``-nc`` id, or an id naming it; or
    ``other`` whose ``terms`` say non-commercial, as NVIDIA's SegFormer licence), ``"unknown terms"`` for one segzoo
    does not know as open (``unknown``, ``other``, anything new); None for an open licence (``OPEN_LICENSES``)."""
    key = license.strip().lower()
    if "-nc" in key or "noncommercial" in key or "non-commercial" in key:
        return "non-commercial"
    if key == "other" and "non-commercial" in (terms or "").lower():
        return "non-commercial"
    return None if key in OPEN_LICENSES else "unknown terms"
