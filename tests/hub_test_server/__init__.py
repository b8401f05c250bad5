"""A small Hugging Face Hub-compatible HTTP server for the tests (see ``server.py``)."""
from .server import HubServer
from .state import git_blob_sha1

__all__ = ["HubServer", "git_blob_sha1"]
