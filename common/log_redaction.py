"""Secrets kept out of the logs: the query parameters of logged URLs that carry codes or tokens.

An access log line holds the request URL.  Ours carry one-time
authorization codes and ``state`` (RFC 6749 §4.1.2), ID tokens as
``id_token_hint`` (RP-Initiated Logout 1.0 §2), and in the implicit and
form-post flows the tokens themselves (RFC 6749 §4.2.2).  A log file is read
by more people and kept longer than any of them should live (RFC 9700
§4.2.4 counts logs among the places codes leak from), so the values of
:data:`SENSITIVE_PARAMETERS` are replaced by :data:`REDACTED` wherever a
URL is logged: gunicorn's access log (:mod:`common.gunicorn_conf`) and the
Werkzeug development server's (:func:`redact_werkzeug_log`).
"""

from __future__ import annotations

import logging
import re

#: Query parameters whose values never reach a log (compared case-insensitively).
SENSITIVE_PARAMETERS = (
    "code",
    "state",
    "id_token_hint",
    "access_token",
    "refresh_token",
    "id_token",
    "session_state",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "token",
    "logout_token",
    "device_code",
    "subject_token",
    "actor_token",
)

#: What a redacted value is replaced by.
REDACTED = "[redacted]"

# A sensitive parameter at the start (a bare query string), after a
# separator (``?``, ``&``, ``;``, ``#`` for a fragment in a logged Location,
# or their percent-encodings inside a nested URL such as
# ``next=/x%3Fcode%3D...``),
# then ``=`` (or ``%3D``) and its value up to the next separator.
_PARAMETER = re.compile(
    r"(?P<lead>(?:^|[?&;#]|%3f|%26|%23)(?:" + "|".join(SENSITIVE_PARAMETERS) + r")(?:=|%3d))"
    r"(?P<value>(?:(?!%26)[^&;\s\"'#<>])*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the value of every sensitive URL query parameter replaced by :data:`REDACTED`."""
    if not isinstance(text, str) or "=" not in text and "%3" not in text.lower():
        return text
    return _PARAMETER.sub(
        lambda match: match.group("lead") + (REDACTED if match.group("value") else ""), text
    )


class RedactingFilter(logging.Filter):
    """A logging filter that :func:`redact`\\ s each record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (its arguments merged in first); never drops a record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def redact_werkzeug_log() -> None:
    """Redact the request lines the Werkzeug development server logs (``flask run``); idempotent."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
        logger.addFilter(RedactingFilter())
