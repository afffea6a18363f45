"""RFC 6750 §3 answers: what a protected API says when a token is missing or not good enough.

Every refusal carries a ``WWW-Authenticate: Bearer`` challenge (the part a
client library reads) and a JSON body with the same ``error`` and a human
``error_description`` (the part a developer reads):

==========================  ======  =============================================
situation                   status  challenge
==========================  ======  =============================================
no token at all             401     ``Bearer realm="..."`` — no error code (§3.1)
malformed request           400     ``error="invalid_request"``
bad, expired, foreign token 401     ``error="invalid_token"``
token lacks the scope       403     ``error="insufficient_scope", scope="..."``
==========================  ======  =============================================

Every other error of the API (404, 405, 500, the issuer unreachable) is
answered as JSON by the suite's one handler family (``common.errors``,
``init_error_pages(app, answer="json")``); this module adds only the
challenge, with :func:`init_bearer_challenge`.
"""

from __future__ import annotations

import re

from flask import Flask, Response, current_app

from common.errors import json_error
from common.web import settings_of

#: RFC 6750 §3: the characters allowed inside ``error_description`` and
#: ``scope`` (printable ASCII without ``"`` and ``\``).  Anything else would
#: break the header or let a token's content inject header syntax.
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5B\x5D-\x7E]")


class BearerError(Exception):
    """A request to a protected route was refused (RFC 6750 §3.1).

    :param error: ``invalid_request``, ``invalid_token``,
        ``insufficient_scope``, or ``None`` when the request carried no
        token at all (§3.1: "the resource server SHOULD NOT include an error
        code or other error information").
    :param description: one human sentence, shown to the developer.
    :param status: 400, 401 or 403.
    :param scope: for ``insufficient_scope``, the scope the route needs.
    """

    def __init__(self, error: str | None, description: str, status: int = 401, scope: str | None = None):
        super().__init__(f"{error or 'no_token'}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.scope = scope


def invalid_token(description: str) -> BearerError:
    """401 ``invalid_token``: expired, revoked, malformed, or not meant for us (§3.1)."""
    return BearerError("invalid_token", description, 401)


def invalid_request(description: str) -> BearerError:
    """400 ``invalid_request``: the request itself is malformed (§3.1)."""
    return BearerError("invalid_request", description, 400)


def insufficient_scope(scope: str, description: str) -> BearerError:
    """403 ``insufficient_scope``: a good token without the scope this route needs (§3.1)."""
    return BearerError("insufficient_scope", description, 403, scope=scope)


def _quoted(value: str) -> str:
    return '"' + _UNSAFE.sub("?", value) + '"'


def www_authenticate(realm: str, error: BearerError) -> str:
    """The ``WWW-Authenticate`` challenge for ``error`` (RFC 6750 §3)."""
    parts = [f"realm={_quoted(realm)}"]
    if error.error:
        parts.append(f"error={_quoted(error.error)}")
        parts.append(f"error_description={_quoted(error.description)}")
    if error.scope:
        parts.append(f"scope={_quoted(error.scope)}")
    return "Bearer " + ", ".join(parts)


def bearer_error_response(error: BearerError) -> Response:
    """The JSON answer for a refused request, with its challenge header."""
    members = {"scope": error.scope} if error.scope else {}
    return json_error(
        error.error or "unauthorized",
        error.description,
        error.status,
        headers={
            "WWW-Authenticate": www_authenticate(settings_of(current_app).api_audience, error),
            # A refusal is specific to this request's token: never cache it.
            "Cache-Control": "no-store",
        },
        **members,
    )


def init_bearer_challenge(app: Flask) -> None:
    """Answer a :class:`BearerError` as RFC 6750 §3 says (after ``init_error_pages(app, answer="json")``)."""
    app.register_error_handler(BearerError, bearer_error_response)
