"""The whole test suite of this plug-in: segzoo's shared head battery, through one class."""
from segzoo.testing import HeadBattery


class TestLinearHead(HeadBattery):
    head = "linear"  # the name this package declares in the segzoo.heads entry-point group
