"""A battery mix-in that moves the ONNX export check to the slow tier (10-25 s a model here): the heads of the
transformer era and those tests/inference/test_export.py does not export in the default tier."""
from __future__ import annotations

import pytest

__all__ = ["OnnxInTheSlowTier"]


class OnnxInTheSlowTier:
    """Put before ``HeadBattery`` in a battery class's bases."""

    @pytest.mark.slow
    def test_onnx_export_runs_at_other_sizes(self, tmp_path):
        super().test_onnx_export_runs_at_other_sizes(tmp_path)
