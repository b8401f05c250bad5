"""``python -m segzoo``: the ``segzoo`` command."""
import sys

from .tools.cli import main

sys.exit(main())
