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
bad or missing DPoP proof   401     ``DPoP error="invalid_dpop_proof"`` (RFC 9449 §7.1)
proof without our nonce     401     ``DPoP error="use_dpop_nonce"`` + ``DPoP-Nonce`` (§9)
==========================  ======  =============================================

Beside the ``Bearer`` challenge comes a ``DPoP`` one with ``algs`` (RFC
9449 §7.1) while ``API_DPOP=optional``; with ``required`` only the ``DPoP``
challenge is sent.

Every other error of the API (404, 405, 500, the issuer unreachable) is
answered as JSON by the suite's one handler family (``common.errors``,
``init_error_pages(app, answer="json")``); this module adds only the
challenge, with :func:`init_bearer_challenge`.
"""

from __future__ import annotations

import re

from flask import Flask, Response, current_app, g

from common.dpop import PROOF_ALGORITHMS
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
        #: For DPoP refusals: the failed proof check, and the nonce to retry with.
        self.check = ""
        self.nonce = ""


def invalid_token(description: str) -> BearerError:
    """401 ``invalid_token``: expired, revoked, malformed, or not meant for us (§3.1)."""
    return BearerError("invalid_token", description, 401)


def invalid_request(description: str) -> BearerError:
    """400 ``invalid_request``: the request itself is malformed (§3.1)."""
    return BearerError("invalid_request", description, 400)


def insufficient_scope(scope: str, description: str) -> BearerError:
    """403 ``insufficient_scope``: a good token without the scope this route needs (§3.1)."""
    return BearerError("insufficient_scope", description, 403, scope=scope)


def invalid_dpop_proof(description: str, check: str = "") -> BearerError:
    """401 ``invalid_dpop_proof``: the DPoP proof is missing or fails a check (RFC 9449 §7.1)."""
    error = BearerError("invalid_dpop_proof", description, 401)
    error.check = check
    return error


def use_dpop_nonce(description: str, nonce: str) -> BearerError:
    """401 ``use_dpop_nonce`` with a fresh ``DPoP-Nonce``: retry with this nonce (RFC 9449 §9)."""
    error = BearerError("use_dpop_nonce", description, 401)
    error.check = "nonce"
    error.nonce = nonce
    return error


#: Error codes that exist only in the DPoP scheme (RFC 9449 §7.1, §9): a
#: Bearer challenge beside them names no error, since Bearer has no such code.
DPOP_ONLY_ERRORS = {"invalid_dpop_proof", "use_dpop_nonce"}

#: The proof algorithms the API accepts, for the challenge's ``algs`` (RFC 9449 §7.1).
DPOP_ALGS = " ".join(PROOF_ALGORITHMS)


def _quoted(value: str) -> str:
    return '"' + _UNSAFE.sub("?", value) + '"'


def _challenge(scheme: str, realm: str, error: BearerError, with_error: bool) -> str:
    """One ``WWW-Authenticate`` challenge of ``scheme`` (RFC 6750 §3, RFC 9449 §7.1)."""
    parts = [f"realm={_quoted(realm)}"]
    if error.error and with_error:
        parts.append(f"error={_quoted(error.error)}")
        parts.append(f"error_description={_quoted(error.description)}")
        if error.scope:
            parts.append(f"scope={_quoted(error.scope)}")
    if scheme == "DPoP":
        parts.append(f"algs={_quoted(DPOP_ALGS)}")
    return f"{scheme} " + ", ".join(parts)


def www_authenticate(realm: str, error: BearerError, *, dpop_mode: str, used_dpop: bool) -> list[str]:
    """The ``WWW-Authenticate`` challenges for ``error``, one per scheme the API accepts.

    ``API_DPOP=optional`` accepts both schemes, so a refusal offers both: a
    ``Bearer`` challenge (RFC 6750 §3) and a ``DPoP`` one with ``algs``
    (RFC 9449 §7.1, which allows several challenges in one answer).  The
    challenge of the scheme the request used comes first, because a client
    reading one header value reads the first.  ``required`` offers only DPoP.
    """
    dpop = _challenge("DPoP", realm, error, True)
    if dpop_mode == "required":
        return [dpop]
    bearer = _challenge("Bearer", realm, error, error.error not in DPOP_ONLY_ERRORS)
    return [dpop, bearer] if used_dpop else [bearer, dpop]


def bearer_error_response(error: BearerError) -> Response:
    """The JSON answer for a refused request, with its challenges (and a nonce when one is asked for)."""
    settings = settings_of(current_app)
    members = {"scope": error.scope} if error.scope else {}
    if error.check:
        members["dpop_check"] = error.check  # which RFC 9449 §4.3 check the proof failed
    response = json_error(
        error.error or "unauthorized",
        error.description,
        error.status,
        # A refusal is specific to this request's token: never cache it.
        headers={"Cache-Control": "no-store"},
        **members,
    )
    used_dpop = g.get("auth_scheme") == "dpop"
    for challenge in www_authenticate(
        settings.api_audience, error, dpop_mode=settings.api_dpop, used_dpop=used_dpop
    ):
        response.headers.add("WWW-Authenticate", challenge)
    if getattr(error, "nonce", None):
        response.headers["DPoP-Nonce"] = error.nonce
    return response


def init_bearer_challenge(app: Flask) -> None:
    """Answer a :class:`BearerError` as RFC 6750 §3 says (after ``init_error_pages(app, answer="json")``)."""
    app.register_error_handler(BearerError, bearer_error_response)
