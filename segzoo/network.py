"""Fail fast without a network.

huggingface_hub retries a request whose connection failed 5 times, waiting 1, 2, 4, 8 and 8 s (about 23 s per file,
with a log line per try). That helps a flaky link or a restarting server; when the Hub's host name cannot be
resolved, or the network is unreachable, no retry can, and an offline run waited ~50 s through 22 lines before its
error. Inside ``failing_fast_offline()`` the first such failure ends the request.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import socket
import sys
from typing import Iterator, Optional

__all__ = ["failing_fast_offline", "no_network_cause"]

_UNREACHABLE = (errno.ENETUNREACH, errno.EHOSTUNREACH)
_RETRY_LOGGER = "huggingface_hub.utils._http"  # logs "'<error>' thrown while requesting ..." before each retry


def no_network_cause(err: Optional[BaseException]) -> Optional[BaseException]:
    """The error in ``err``'s chain that says there is no network: a host name that cannot be resolved, or an
    unreachable network or host; None otherwise (a refused or cut connection has a network: retrying may help)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, socket.gaierror) or (isinstance(err, OSError) and err.errno in _UNREACHABLE):
            return err
        err = err.__cause__ or err.__context__
    return None


class _FailFast(logging.Filter):
    """Re-raises, from huggingface_hub's log call inside its retry loop's ``except``, the error being handled when it
    means no network: the loop ends instead of sleeping, and huggingface_hub handles the error as after its last
    retry (a cached file is still used)."""

    def filter(self, record: logging.LogRecord) -> bool:
        handled = sys.exc_info()[1]
        if handled is not None and "thrown while requesting" in record.getMessage() \
                and no_network_cause(handled) is not None:
            raise handled
        return True


@contextlib.contextmanager
def failing_fast_offline() -> Iterator[None]:
    """Within: a Hub request that fails for want of a network is not retried."""
    logger, check = logging.getLogger(_RETRY_LOGGER), _FailFast()
    logger.addFilter(check)
    try:
        yield
    finally:
        logger.removeFilter(check)
