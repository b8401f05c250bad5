"""A metrics log in JSON lines: one object per line, appended, so a resumed run continues the same file and
a plot is one ``pandas.read_json(path, lines=True)`` away."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from ..files import output_error
from ..weights.checkpoint import atomic_write

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
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise output_error(self.path, err) from None

    def write(self, **record) -> None:
        """Append one record, stamped with the wall-clock ``time``; flushed at once so a crash loses nothing.

        Raises:
            OutputError: The log cannot be written (read-only, disk full), naming it and the cause.
        """
        if not self.enabled:
            return
        line = json.dumps(json_safe({"time": round(time.time(), 3), **record}), allow_nan=False)
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as err:  # a line cut short by a full disk is dropped on resume (truncate_after)
            raise output_error(self.path, err) from err

    def truncate_after(self, iteration: int, redo: tuple[str, ...] = ()) -> int:
        """Drop the records of iterations after ``iteration``, atomically; returns how many were dropped.

        A run resumed from the checkpoint at ``iteration`` trains the later iterations again: without this the
        log would hold them twice (those of the crashed run, then the new ones). Lines a crash left half
        written are dropped too.

        Args:
            iteration: The iteration the run resumes at.
            redo: Events at ``iteration`` itself that the resumed run writes again (e.g. ``("eval",)``).
        """
        if not self.enabled or not self.path.is_file():
            return 0
        kept, dropped = [], 0
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:  # a half-written last line (or a blank one)
                    dropped += bool(line.strip())
                    continue
                done = record.get("iteration") if isinstance(record, dict) else None
                if isinstance(done, int) and (done > iteration or (done == iteration and record.get("event") in redo)):
                    dropped += 1
                else:
                    kept.append(line if line.endswith("\n") else line + "\n")
        if dropped:
            atomic_write(self.path, lambda tmp: Path(tmp).write_text("".join(kept), encoding="utf-8"))
        return dropped

    def read(self) -> list[dict]:
        """Every record written so far."""
        if not self.path.is_file():
            return []
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
