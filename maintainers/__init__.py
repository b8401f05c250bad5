"""Maintainer tools for publishing segzoo weights (not part of the installed package)."""
