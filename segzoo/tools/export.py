"""``segzoo.tools.export`` is ``segzoo.inference.export``, kept under its first name for existing imports.

The export moved to the inference layer because ``segzoo.optimize``'s ONNX Runtime path exports the model it
runs, and the inference layer may not import the tools above it (docs/architecture.md).
"""
from ..inference.export import *  # noqa: F401,F403
from ..inference.export import __all__  # noqa: F401
