"""An example third-party segzoo head, installed separately from segzoo."""
