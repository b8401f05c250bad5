"""``predict``'s inference path, chosen while the images are segmented so that the choice pays for itself.

With one candidate path (a CPU without native bfloat16, a GPU, a precision asked for by name) there is nothing to
measure. With several (``auto`` on a CPU with native bfloat16, ``runtime="auto"``, int8 with calibration images):

1. A choice remembered for these weights, this CPU and this input size (``path_memory``) is taken as it is.
2. Too few images for a measurement to finish (``measure_needs``) run the float32 path: measuring could not
   change what they get.
3. Else the first batch is segmented by the float32 path, and those outputs are its predictions; every other
   candidate runs on it too, and one whose decoded prediction differs from float32's on more than
   ``1 - AGREEMENT_THRESHOLD`` of the pixels is dropped. The next batches are the timing: the candidates left take
   turns, ``TIMED_BATCHES`` batches each, every timed run being one of the predictions. The fastest per pixel is
   then kept for the rest and remembered.

So the cost of measuring is one extra run of each reduced-precision candidate on the first batch and a few
batches on the slower paths. The choice is said in one plain line (``PathChoice.line``).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

from torch import Tensor, nn

from . import path_memory
from .paths import build_path
from .precision import AGREEMENT_THRESHOLD, argmax_agreement, cpu_has_fast_bf16, cpu_signature

__all__ = ["TIMED_BATCHES", "PathChoice", "PathChooser", "measure_needs"]

_clock = time.perf_counter  # a name of its own, so that tests can time the paths with a clock of theirs
TIMED_BATCHES = 2  # per candidate path, after the first batch (whose first calls also pay each path's warm-up)

Path = tuple[str, str]
Infer = Callable[[nn.Module, Tensor], Tensor]


def measure_needs(paths: list[Path]) -> int:
    """How many batches a measurement among ``paths`` takes: the agreement batch and ``TIMED_BATCHES`` per path."""
    return 1 + TIMED_BATCHES * len(paths)


def _name(path: Path) -> str:
    return f"{path[0]} {path[1]}"


@dataclass(frozen=True)
class PathChoice:
    """The path predict runs on and why: ``reason`` in words; for a measured (or remembered) choice, each
    candidate's ``agreement`` with float32 and the chosen path's ``speedup`` over the float32 path."""

    path: Path
    reason: str

    def line(self) -> str:
        """One line for the user, e.g. ``inference: bf16 eager (agreement 99.81%, 1.93x fp32 eager)``."""
        return f"inference: {_name(self.path)} ({self.reason})"


class PathChooser:
    """Runs ``predict``'s batches on the path chosen as the module docstring says.

    Args:
        model: The float32 model (built by predict from a name when ``inplace``: then rewritten in place).
        paths: The candidate paths, float32 first (``paths.candidate_paths``).
        infer: ``infer(model, images) -> logits`` at the input's size: what predict does with each batch.
        expected_batches: How many batches the run will have (an upper bound is fine).
        mode, threshold: The model's task, to decode logits for the agreement.
        asked: The precision asked for (``"auto"``, ``"fp32"``, ...), for the reason of a path not measured.
        remeasure: Measure even where a choice is remembered (and replace it).
        recipe: What each image goes through (scales, flip, windows): part of the remembered choice's key.
        build_options: Passed to ``paths.build_path`` (``example_size``, ``calibration``).
    """

    def __init__(self, model: nn.Module, paths: list[Path], infer: Infer, *, expected_batches: int, mode: str,
                 threshold: float, asked: str, remeasure: bool = False, inplace: bool = False, recipe=None,
                 build_options: Optional[dict] = None):
        self.paths, self.infer = list(paths), infer
        self.expected_batches, self.mode, self.threshold = expected_batches, mode, threshold
        self.asked, self.remeasure, self.inplace, self.recipe = asked, remeasure, inplace, recipe
        self.build_options = build_options or {}
        self.choice: Optional[PathChoice] = None  # set once the path is fixed
        self._source = model
        self._model: Optional[nn.Module] = None  # the chosen path's model
        self._racing: dict[Path, nn.Module] = {}  # candidates being timed
        self._agreement: dict[Path, float] = {}
        self._times: dict[Path, list[float]] = {}
        self._key: Optional[str] = None
        self.said: Optional[Callable[[str], None]] = None  # called with the choice's line once it is fixed
        if len(self.paths) == 1:
            self._fix(self._build(self.paths[0], self.inplace), PathChoice(self.paths[0], self._single_reason()))

    # --- the batches ------------------------------------------------------------------------------------------

    def __call__(self, images: Tensor) -> Tensor:
        """The logits of one batch, on the chosen path (or on the path whose turn it is while timing)."""
        if self._model is not None:
            return self.infer(self._model, images)
        if not self._racing:
            return self._first_batch(images)
        return self._timed_batch(images)

    def finish(self) -> Optional[PathChoice]:
        """After the last batch: fix a choice if the images ran out mid-measurement (not remembered)."""
        if self.choice is None and self._racing:
            fp32 = self.paths[0]
            self._fix(self._racing[fp32], PathChoice(fp32, "the images ran out before the measurement finished; "
                                                           "nothing remembered"))
        return self.choice

    # --- steps ----------------------------------------------------------------------------------------------------

    def _first_batch(self, images: Tensor) -> Tensor:
        fp32 = self.paths[0]
        remembered = None
        if not (self.remeasure or path_memory.remeasure_requested()):
            self._key = self._decision_key(images)  # hashes the weights: a tenth of a second per 50 MB
            remembered = path_memory.recall(self._key)
        if remembered is not None and (remembered["precision"], remembered["runtime"]) in self.paths:
            path = (remembered["precision"], remembered["runtime"])
            reason = remembered.get("reason", "measured before")
            self._fix(self._build(path, self.inplace),
                      PathChoice(path, f"{reason}; remembered from {remembered.get('measured', 'an earlier run')}, "
                                       f"--remeasure to measure again"))
            return self.infer(self._model, images)
        if self.expected_batches < measure_needs(self.paths):
            others = ", ".join(_name(path) for path in self.paths[1:])
            self._fix(self._build(fp32, self.inplace),
                      PathChoice(fp32, f"too few images to measure {others}: it takes "
                                       f"{measure_needs(self.paths)} batches"))
            return self.infer(self._model, images)

        if self._key is None:
            self._key = self._decision_key(images)
        # Candidates are built from the float32 model before it is (possibly) rewritten in place.
        built, failed = {}, {}
        for path in self.paths[1:]:
            try:
                built[path] = self._build(path, False)
            except Exception as err:  # noqa: BLE001 - a path that cannot be built here is left out, and said
                failed[path] = _short(err)
        reference = self._build(fp32, self.inplace)
        logits = self.infer(reference, images)  # the first batch's predictions
        self._racing = {fp32: reference}
        left_out = [f"{_name(path)} failed ({why})" for path, why in failed.items()]
        for path, candidate in built.items():
            try:
                agreement = self._agreement_with(logits, self.infer(candidate, images))
            except Exception as err:  # noqa: BLE001
                left_out.append(f"{_name(path)} failed ({_short(err)})")
                continue
            self._agreement[path] = agreement
            if path[0] == "fp32" or agreement >= AGREEMENT_THRESHOLD:
                self._racing[path] = candidate
            else:
                left_out.append(f"{_name(path)} agrees on {agreement:.2%} of pixels, below "
                                f"{AGREEMENT_THRESHOLD:.1%}")
        self._left_out = left_out
        if len(self._racing) == 1:
            self._decide(fp32, "; ".join(left_out))
        else:
            self._times = {path: [] for path in self._racing}
        return logits

    def _timed_batch(self, images: Tensor) -> Tensor:
        # the path timed least so far takes this batch; on ties, the reduced precisions first
        order = list(self._racing)[1:] + [self.paths[0]]
        path = min(order, key=lambda p: len(self._times[p]))
        start = _clock()
        logits = self.infer(self._racing[path], images)
        self._times[path].append((_clock() - start) / _pixels(images))
        if all(len(times) >= TIMED_BATCHES for times in self._times.values()):
            self._decide_fastest()
        return logits

    def _decide_fastest(self) -> None:
        fp32 = self.paths[0]
        medians = {path: statistics.median(times) for path, times in self._times.items()}
        fastest = min(medians, key=medians.get)
        if fastest != fp32:
            parts = [f"agreement {self._agreement[fastest]:.2%}, {medians[fp32] / medians[fastest]:.2f}x {_name(fp32)}"]
        else:
            parts = ["the fastest"] + [f"{_name(path)}: agreement {self._agreement[path]:.2%}, "
                                       f"{medians[fp32] / medians[path]:.2f}x" for path in medians if path != fp32]
        self._decide(fastest, "; ".join(parts + self._left_out))

    # --- helpers --------------------------------------------------------------------------------------------------

    def _decide(self, path: Path, reason: str) -> None:
        """Fix a measured choice and remember it."""
        self._fix(self._racing[path], PathChoice(path, reason))
        if self._key is not None:
            path_memory.remember(self._key, {"precision": path[0], "runtime": path[1], "reason": reason})

    def _fix(self, model: nn.Module, choice: PathChoice) -> None:
        self._model, self.choice = model, choice
        self._racing, self._source = {}, None  # the other candidates' memory goes
        if self.said is not None:
            self.said(choice.line())

    def _build(self, path: Path, inplace: bool) -> nn.Module:
        return build_path(self._source, path, inplace=inplace, warn_emulated=False, **self.build_options)

    def _agreement_with(self, reference: Tensor, logits: Tensor) -> float:
        return argmax_agreement(reference, logits, self.mode, self.threshold)

    def _decision_key(self, images: Tensor) -> str:
        return path_memory.decision_key(path_memory.weights_fingerprint(self._source), cpu_signature(),
                                        tuple(images.shape), self.paths, self.recipe)

    def _single_reason(self) -> str:
        precision, runtime = self.paths[0]
        if self.asked != "auto":
            emulated = precision == "bf16" and not cpu_has_fast_bf16()
            return "as asked" + ("; this CPU emulates bfloat16: several times slower than fp32" if emulated else "")
        if precision == "fp32" and runtime == "eager":
            return "no native bfloat16 on this CPU" if _on_cpu(self._source) else "the only path on this device"
        return "the only candidate path"

    def line_when_fixed(self, say: Callable[[str], None]) -> None:
        """Call ``say(line)`` once the choice is fixed (now, if it already is)."""
        self.said = say
        if self.choice is not None:
            say(self.choice.line())


def _pixels(images: Tensor) -> int:
    return max(1, images.shape[0] * images.shape[-2] * images.shape[-1])


def _on_cpu(model: nn.Module) -> bool:
    tensor = next(iter(model.parameters()), None)
    return tensor is None or tensor.device.type == "cpu"


def _short(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:200]}" if str(err) else type(err).__name__
