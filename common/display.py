"""Numbers made readable on the pages: epoch times as UTC dates, seconds as durations.

Registered as the Jinja filters ``utc`` and ``duration`` by
:func:`common.web.init_templates`, for every app.
"""

from __future__ import annotations

import math
import time

#: JWT claims whose values are NumericDate (RFC 7519 §2): seconds since the epoch.
TIME_CLAIMS = frozenset({"exp", "iat", "nbf", "auth_time", "updated_at"})


def format_utc(epoch) -> str:
    """``2024-05-01 12:00:00 UTC`` for an epoch time (a token's expiry, a claim).

    Never raises: the time came from the issuer (``expires_in``, a claim),
    and a page must not fail on a value that is out of range for a date.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
        return "unknown"  # time.gmtime(None) would be "now"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (ValueError, OverflowError, OSError):
        return "unknown"


def format_duration(seconds) -> str:
    """``59 min 59 s``, ``1 h 5 min``, ``12 s`` for a number of seconds (``unknown`` if it is none)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "unknown"
    left = max(0, int(seconds))
    hours, rest = divmod(left, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
