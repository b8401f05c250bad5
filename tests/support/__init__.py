"""Helpers shared by the tests: models with non-trivial numbers (``models``), the example scripts run as real
processes (``scripts``)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
