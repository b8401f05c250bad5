"""A metrics log in JSON lines: one object per line, appended, so a resumed run continues the same file and
a plot is one ``pandas.read_json(path, lines=True)`` away."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

__all__ = ["MetricsLog", "json_safe"]


def json_safe(value):
    """``value`` with the floats that strict JSON cannot hold (nan, inf) as None, and tensors / numpy scalars as
    numbers, in nested dicts, lists and tuples too."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


class MetricsLog:
    """Append records to ``path`` (JSON lines). Disabled instances (non-main DDP ranks) write nothing."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record) -> None:
        """Append one record, stamped with the wall-clock ``time``; flushed at once so a crash loses nothing."""
        if not self.enabled:
            return
        line = json.dumps(json_safe({"time": round(time.time(), 3), **record}), allow_nan=False)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def read(self) -> list[dict]:
        """Every record written so far."""
        if not self.path.is_file():
            return []
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
