"""The device authorization grant (RFC 8628): signing in a device that has no usable browser.

Two steps, each a function named after it:

* :func:`request_device_authorization` (RFC 8628 §3.1–3.2): the client asks
  the issuer's ``device_authorization_endpoint`` for a ``device_code`` (its
  own, secret) and a ``user_code`` (the user's, short) with the URL where the
  user enters it;
* :func:`poll_for_tokens` (§3.4–3.5): while the user approves on another
  device, the client polls the token endpoint with the ``device_code``,
  waiting ``interval`` seconds between requests, five more after each
  ``slow_down``, until tokens come back or the flow ends (``access_denied``,
  ``expired_token``).

The token answer is :mod:`common.tokens`' (:func:`~common.tokens.device_code_grant`),
so it is checked like every other grant's; validating the ID token is the
caller's next step (:func:`common.id_token.validate_id_token`, no nonce:
there was no authorization request).  The user code and the URLs are shown
to a person, so they are checked and bounded here (:func:`_answer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .client import Client
from .errors import FlowError
from .http import require_secure_url
from .recorder import FlowRecorder
from .tokens import TokenEndpointError, TokenSet, device_code_grant, lifetime_of
from .untrusted import error_code, plain_text

#: RFC 8628 §3.2: without ``interval`` the client waits 5 seconds between polls; §3.5: ``slow_down`` adds 5.
DEFAULT_INTERVAL = 5
SLOW_DOWN_STEP = 5

#: The longest wait between two polls that an issuer's ``interval`` may ask for.
MAX_INTERVAL = 300

#: RFC 8628 §3.5: the token endpoint's answers that mean "not yet, ask again".
KEEP_POLLING = frozenset({"authorization_pending", "slow_down"})

#: The step name of one poll (:func:`common.tokens.device_code_grant`).
POLL_STEP = "token_request.device_code"

#: What to do about each error code of the device authorization endpoint (RFC 8628 §3.2, RFC 6749 §5.2).
DEVICE_AUTHORIZATION_HINTS = {
    "unauthorized_client": (
        "This client may not use the device authorization grant: enable the grant for it at the issuer "
        '(at Okta: the Native app\'s "Device Authorization" grant type, and a rule of the authorization '
        "server's access policy that allows it)."
    ),
    "access_denied": (
        "No rule of the authorization server's access policy allows this client the device authorization "
        'grant (Okta: "Policy evaluation failed"): add "Device Authorization" to a rule\'s grant types.'
    ),
    "invalid_client": "The issuer does not know this client id: check NATIVE_CLIENT_ID.",
    "invalid_scope": "Ask only for scopes the issuer defines and allows this client.",
}


class DeviceAuthorizationError(FlowError):
    """The device authorization endpoint refused the request (RFC 8628 §3.2, RFC 6749 §5.2).

    :param issuer_error: the issuer's error code (checked to be well-formed).
    """

    def __init__(self, issuer_error: str, description: str):
        super().__init__(
            "device_authorization_error",
            f"The device authorization endpoint refused the request ({issuer_error}"
            f"{': ' + description if description else ''}).",
            DEVICE_AUTHORIZATION_HINTS.get(issuer_error, "Check the client's registration at the issuer."),
            502,
        )
        self.issuer_error = issuer_error


class DeviceFlowEnded(FlowError):
    """The device flow ended without tokens: the user denied, or the codes expired (RFC 8628 §3.5).

    :param reason: ``access_denied`` or ``expired_token``.
    """

    def __init__(self, reason: str, description: str, hint: str):
        super().__init__(reason, description, hint, 400)
        self.reason = reason


@dataclass(frozen=True)
class DeviceAuthorization:
    """The issuer's device authorization response (RFC 8628 §3.2), checked.

    :param device_code: the client's secret handle for polling (never shown to the user).
    :param user_code: what the user types at ``verification_uri``.
    :param verification_uri: where the user goes, on any device with a browser.
    :param verification_uri_complete: the same with the ``user_code`` in it (for a QR code), if sent.
    :param expires_in: seconds both codes live.
    :param interval: seconds to wait between polls.
    :param expires_at: :func:`time.monotonic` time at which the codes expire.
    """

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    expires_at: float


def request_device_authorization(client: Client, scope: str) -> DeviceAuthorization:
    """Ask the issuer for a device code and a user code (RFC 8628 §3.1, §3.2).

    A form POST to discovery's ``device_authorization_endpoint`` with the
    client's id (a public client authenticates with nothing else, RFC 8628
    §3.1) and the scope; the answer is checked by :func:`_answer`.

    :raises FlowError: :class:`DeviceAuthorizationError` (the issuer refused), ``invalid_response``,
        ``issuer_misconfigured`` (no such endpoint),
        ``issuer_unreachable``.
    """
    status, data = client.post_form(
        "device_authorization_endpoint",
        {"scope": scope},
        what="device authorization endpoint",
        step="device_authorization",
        error="device_authorization_error",
    )
    with client.recorder.failures("device_authorization"):
        if status >= 400 or "error" in data:
            # RFC 8628 §3.2 answers errors as RFC 6749 §5.2 does.
            issuer_error = error_code(data.get("error", f"HTTP {status}"), "invalid_response")
            raise DeviceAuthorizationError(issuer_error, plain_text(data.get("error_description") or ""))
        return _answer(data)


def _answer(data: Mapping[str, Any]) -> DeviceAuthorization:
    """The checked fields of a device authorization response (RFC 8628 §3.2).

    ``device_code``, ``user_code``, ``verification_uri`` and ``expires_in``
    are REQUIRED.  Both URLs are shown to a person who will sign in there,
    so they must be https (loopback excepted), like every endpoint
    (:func:`common.http.require_secure_url`); the user code must be short
    printable text.
    """
    device_code, user_code = data.get("device_code"), data.get("user_code")
    uri, complete = data.get("verification_uri"), data.get("verification_uri_complete")
    expires_in = lifetime_of(data.get("expires_in"))
    if not (isinstance(device_code, str) and 0 < len(device_code) <= 2048):
        raise _invalid("no usable device_code")
    if not (isinstance(user_code, str) and 0 < len(user_code) <= 64 and user_code == plain_text(user_code)):
        raise _invalid("no usable user_code")
    if not isinstance(uri, str) or (complete is not None and not isinstance(complete, str)):
        raise _invalid("no usable verification_uri")
    if expires_in is None:
        raise _invalid("no usable expires_in")
    require_secure_url(uri, "verification_uri")
    if complete:
        require_secure_url(complete, "verification_uri_complete")
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=complete or None,
        expires_in=int(expires_in),
        interval=_interval(data.get("interval")),
        expires_at=time.monotonic() + expires_in,
    )


def _interval(value: Any) -> int:
    """``interval`` in whole seconds: the RFC 8628 §3.2 default when absent, never below 1."""
    if value is None:
        return DEFAULT_INTERVAL
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_INTERVAL:
        raise _invalid(f"an unusable interval ({plain_text(value, 40)!r})")
    return max(1, int(value))


def _invalid(what: str) -> FlowError:
    """The error for a device authorization answer that lacks ``what`` or has it unusable."""
    return FlowError(
        "invalid_response",
        f"The device authorization endpoint answered with {what}.",
        "The issuer's answer is not a valid device authorization response (RFC 8628 §3.2).",
        502,
    )


def poll_for_tokens(
    client: Client,
    authorization: DeviceAuthorization,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_poll: Callable[[str, int], None] | None = None,
) -> TokenSet:
    """Poll the token endpoint until the user has decided (RFC 8628 §3.4, §3.5).

    Before each request the client waits ``interval`` seconds.  The issuer's
    answer says what next: ``authorization_pending`` (the user has not
    finished: keep polling), ``slow_down`` (keep polling, and wait 5 seconds
    longer from now on), ``access_denied`` and ``expired_token`` (stop), or
    the tokens.  A client whose codes have expired stops by itself even if
    the issuer never says so.  Only the first ``authorization_pending`` is
    narrated in full; the repeats are counted (:class:`_QuietRepeats`).

    :param on_poll: called after each poll that goes on, with the answer and the interval now in force.
    :raises DeviceFlowEnded: ``access_denied`` or ``expired_token``.
    :raises FlowError: any other refusal (:class:`~common.tokens.TokenEndpointError`), ``issuer_unreachable``.
    """
    interval = authorization.interval
    quiet = _QuietRepeats(client.recorder)
    polling = client.with_recorder(quiet)
    try:
        while True:
            sleep(interval)
            try:
                return device_code_grant(polling, authorization.device_code)
            except TokenEndpointError as refusal:
                answer = refusal.issuer_error
                if answer == "slow_down":
                    # §3.5: "the interval MUST be increased by 5 seconds for this and all
                    # subsequent requests".
                    interval += SLOW_DOWN_STEP
                elif answer != "authorization_pending":
                    raise _ended(refusal) from None
                if clock() >= authorization.expires_at + interval:
                    # The issuer should have said expired_token by now; stop anyway.
                    raise _ended(TokenEndpointError("expired_token")) from None
                if on_poll is not None:
                    on_poll(answer, interval)
    finally:
        if quiet.skipped:
            client.recorder.step("device_poll.repeated", number=quiet.skipped)


def _ended(refusal: TokenEndpointError) -> FlowError:
    """The error that ends the flow: :class:`DeviceFlowEnded` for §3.5's two final answers, else as it is."""
    if refusal.issuer_error == "access_denied":
        return DeviceFlowEnded(
            "access_denied",
            "The sign-in was denied at the verification page, so no tokens were issued.",
            "Run the command again if that was a mistake.",
        )
    if refusal.issuer_error == "expired_token":
        return DeviceFlowEnded(
            "expired_token",
            "The code expired before anyone approved the sign-in, so no tokens were issued.",
            "Run the command again and enter the new code sooner.",
        )
    return refusal


class _QuietRepeats(FlowRecorder):
    """Narrates to ``inner``, but only the first ``authorization_pending`` poll of many.

    A user takes a minute or more to approve: at 5 seconds a poll, a full
    record of every identical answer would bury the steps that matter.
    The repeats are counted in :attr:`skipped`.
    """

    def __init__(self, inner: FlowRecorder):
        super().__init__(inner.log)
        self.inner = inner
        self.skipped = 0
        self._pending_seen = False
        self._skip_failure = False

    def step(self, step: str, **details) -> None:
        """Record ``step`` on ``inner``, unless it is a repeated ``authorization_pending`` poll."""
        self._skip_failure = False
        response = details.get("response") or {}
        body = response.get("body") if isinstance(response, Mapping) else None
        if step == POLL_STEP and isinstance(body, Mapping) and body.get("error") == "authorization_pending":
            if self._pending_seen:
                self.skipped += 1
                self._skip_failure = True  # the TokenEndpointError that follows belongs to it
                return
            self._pending_seen = True
        self.inner.step(step, **details)

    def token(self, step: str, token: str, checks, error=None) -> None:
        """Record a JWT on ``inner``."""
        self.inner.token(step, token, checks, error)

    def failure(self, step: str, error: FlowError, **values) -> None:
        """Record a failure on ``inner``, unless it is an answer that means "keep polling" (§3.5).

        ``authorization_pending`` and ``slow_down`` come as token errors, but
        they are the expected answers while the user decides, not failures.
        """
        skip, self._skip_failure = self._skip_failure, False
        if skip or getattr(error, "issuer_error", None) in KEEP_POLLING:
            return
        self.inner.failure(step, error, **values)
