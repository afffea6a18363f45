"""Text that comes from outside (the issuer, the browser's address bar), made safe to carry.

Error codes and descriptions in an authorization response (RFC 6749
§4.1.2.1) or a token-endpoint error (RFC 6749 §5.2) are chosen by whoever
wrote the URL or the answer.  They are passed on as bounded plain text, and
an error code must have the characters RFC 6749 §A.7 allows; HTML escaping
happens where the text is rendered (Jinja escapes every page).
"""

from __future__ import annotations

import re
from typing import Any

#: RFC 6749 §5.2 / §A.7: the characters an ``error`` code may have.
ERROR_CODE = re.compile(r"^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def plain_text(value: Any, limit: int = 300) -> str:
    """``value`` as text with no control characters, at most ``limit`` characters (plus "…")."""
    text = _CONTROL.sub(" ", str(value or ""))
    return text[:limit] + ("…" if len(text) > limit else "")


def error_code(value: Any, fallback: str) -> str:
    """``value`` when it is a well-formed RFC 6749 error code, else ``fallback``."""
    text = str(value)
    return text if ERROR_CODE.match(text) else fallback
