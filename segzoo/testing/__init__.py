"""Testing helpers for segzoo heads, built-in and third-party: the shared ``HeadBattery`` (needs pytest)."""
from .battery import DILATED_AND_JPU, HeadBattery, randomize_batch_norm, switch_on_zero_initialised

__all__ = ["DILATED_AND_JPU", "HeadBattery", "randomize_batch_norm", "switch_on_zero_initialised"]
