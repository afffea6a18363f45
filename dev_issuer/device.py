"""The device authorization grant at the dev issuer (RFC 8628), as Okta offers it.

* ``POST {issuer}/v1/device/authorize``: :class:`DeviceAuthorizationEndpoint`
  (§3.1–3.2) gives a public client a ``device_code`` and a ``user_code``;
* the user enters the code at ``{issuer base}/activate`` (``activate.py``),
  signs in and allows or denies;
* ``POST {issuer}/v1/token`` with ``grant_type=urn:ietf:params:oauth:grant-type:device_code``:
  :class:`DeviceCodeGrant` (§3.4–3.5) answers ``authorization_pending``,
  ``slow_down``, ``access_denied``, ``expired_token`` or the tokens, once.

Authlib's ``rfc8628`` classes do the protocol; the storage is
:class:`DeviceStore`, in Redis.  Every key of one device code carries the
digest of the code as its ``{hash tag}``, so that the one multi-key step (the
polling rate, a Lua script) stays on one Redis Cluster slot; everything
else is a single-key command.
"""

from __future__ import annotations

import json
import secrets
import time

from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE, DeviceCredentialDict, ExpiredTokenError
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint as _DeviceAuthorizationEndpoint
from authlib.oauth2.rfc8628 import DeviceCodeGrant as _DeviceCodeGrant
from authlib.oauth2.rfc8628.errors import AuthorizationPendingError, SlowDownError
from flask import Blueprint, request

from .client_auth import refuse_unreadable_client_credentials
from .errors import post_only, register_protocol_error_handlers
from .grants import OpenIDToken
from .state import authorization_server, state
from .storage import new_id, storage_digest

#: RFC 8628 §6.1: a user code from an alphabet without vowels (no words) and
#: without the look-alikes 0/O and 1/I; 20^8 codes, typed as XXXX-XXXX.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8

#: RFC 8628 §3.2: seconds the client waits between polls (Okta's figure too).
POLL_INTERVAL = 5

#: A device code's records outlive its ``expires_in`` by this much, so that
#: a late poll is told ``expired_token`` (§3.5) rather than "unknown code".
EXPIRED_GRACE = 600

#: How early a poll may come and still count as on time: two Redis clocks
#: read the same time source, but requests are not served in zero time.
POLL_SLACK_MS = 200

device_protocol = Blueprint("device_protocol", __name__)


def normalize_user_code(text: str) -> str | None:
    """The user code as stored (``BCDFGHJK``), from what a person typed; ``None`` if it cannot be one.

    Case does not matter, and neither do a dash or spaces (RFC 8628 §6.1:
    "the verification page SHOULD ignore ... characters like dashes").
    """
    if not isinstance(text, str) or len(text) > 64:
        return None
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in code):
        return None
    return code


def display_user_code(code: str) -> str:
    """``BCDFGHJK`` as people read it: ``BCDF-GHJK``."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


class DeviceStore:
    """Device codes, user codes and the users' decisions, in Redis (RFC 8628 §3.2, §3.3).

    A device code is stored only as its SHA-256 digest (like codes and
    refresh tokens, ``storage.py``); the user code points to that digest
    and is deleted once a decision is made (one use).
    """

    #: KEYS: poll marker, current interval; ARGV: base interval, TTL seconds, slack ms.
    #: The marker lives one interval from the last poll.  Returns 1 when this
    #: poll came while it lived: then the interval grows by 5 s (RFC 8628
    #: §3.5) and the next poll must wait that long from now; else 0.
    _POLL = """
    local interval = tonumber(redis.call('GET', KEYS[2]) or ARGV[1])
    local slack = tonumber(ARGV[3])
    if redis.call('SET', KEYS[1], '1', 'NX', 'PX', math.max(1, interval * 1000 - slack)) then return 0 end
    interval = interval + 5
    redis.call('SET', KEYS[2], interval, 'EX', ARGV[2])
    redis.call('SET', KEYS[1], '1', 'PX', math.max(1, interval * 1000 - slack))
    return 1
    """

    def __init__(self, redis_client, lifetime: int):
        self.redis = redis_client
        self.lifetime = lifetime

    @staticmethod
    def _key(digest: str, part: str = "") -> str:
        """A key of one device code; the digest in braces is its Redis Cluster hash tag (one slot)."""
        return f"dev_issuer:device:{{{digest}}}" + (f":{part}" if part else "")

    @staticmethod
    def _user_code_key(code: str) -> str:
        """The key of a user code (normalized), which names its device code's digest."""
        return f"dev_issuer:device_user_code:{code}"

    def create(self, device_code: str, record: dict) -> str:
        """Store a new device code and give it a fresh user code; return the user code (normalized)."""
        digest = storage_digest(device_code)
        ttl = self.lifetime + EXPIRED_GRACE
        while True:
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
            # NX: a user code names one pending device at a time (§6.1).
            if self.redis.set(self._user_code_key(user_code), digest, nx=True, ex=self.lifetime):
                break
        record = {**record, "user_code": user_code, "expires_at": time.time() + self.lifetime}
        self.redis.set(self._key(digest), json.dumps(record), ex=ttl)
        return user_code

    def by_device_code(self, device_code: str) -> tuple[str, dict] | None:
        """``(digest, record)`` of a device code, or ``None`` for one never issued (or long gone)."""
        digest = storage_digest(device_code)
        raw = self.redis.get(self._key(digest))
        return (digest, json.loads(raw)) if raw else None

    def by_user_code(self, user_code: str) -> tuple[str, dict] | None:
        """``(digest, record)`` of a pending, unexpired user code, or ``None``."""
        digest = self.redis.get(self._user_code_key(user_code))
        if digest is None:
            return None
        raw = self.redis.get(self._key(digest.decode()))
        if raw is None:
            return None
        record = json.loads(raw)
        if record["expires_at"] <= time.time() or self.decision(digest.decode()) is not None:
            return None
        return digest.decode(), record

    def decide(self, digest: str, user_code: str, decision: dict) -> bool:
        """Record the user's Allow or Deny, once; False when a decision was already made."""
        made = self.redis.set(self._key(digest, "decision"), json.dumps(decision), nx=True, ex=self.lifetime)
        # The user code has done its work: nobody can enter it again.
        self.redis.delete(self._user_code_key(user_code))
        return bool(made)

    def decision(self, digest: str) -> dict | None:
        """The user's decision on a device code, if made: ``{"approved", "username", "auth_time"}``."""
        raw = self.redis.get(self._key(digest, "decision"))
        return json.loads(raw) if raw else None

    def too_fast(self, digest: str, interval: int) -> bool:
        """True when this poll came sooner than the interval in force (§3.5 ``slow_down``)."""
        keys = (self._key(digest, "poll"), self._key(digest, "interval"))
        ttl = self.lifetime + EXPIRED_GRACE
        return bool(self.redis.eval(self._POLL, 2, *keys, interval, ttl, POLL_SLACK_MS))

    def redeem(self, digest: str) -> bool:
        """Use an approved device code up, atomically; False when it already was (one set of tokens)."""
        ttl = self.lifetime + EXPIRED_GRACE
        return bool(self.redis.set(self._key(digest, "used"), "1", nx=True, ex=ttl))


def device_store() -> DeviceStore:
    """The current issuer's device store, on the issuer's Redis."""
    st = state()
    return DeviceStore(st.store.redis, st.settings.dev_issuer_device_code_lifetime)


class DeviceAuthorizationEndpoint(_DeviceAuthorizationEndpoint):
    """RFC 8628 §3.1–3.2: device code, user code and the verification URIs, for an allowed client."""

    CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]

    def create_endpoint_response(self, request):
        """Authenticate the client, check its grant and scope, then issue the codes (§3.2).

        Authlib's version checks the scope against the issuer's list only;
        like the other grants here, a client may ask only for its own
        scopes, and only a client registered for the grant gets codes.
        """
        client = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("This client is not allowed the device authorization grant.")
        scope = client.get_allowed_scope(request.payload.scope)
        if scope is None:
            raise InvalidScopeError(
                "Ask for scopes this app may have, e.g. openid profile email offline_access."
            )
        lifetime = state().settings.dev_issuer_device_code_lifetime
        device_code = self.generate_device_code()
        record = {"client_id": client.get_client_id(), "scope": scope, "interval": POLL_INTERVAL}
        user_code = display_user_code(device_store().create(device_code, record))
        verification_uri = self.get_verification_uri()
        data = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            # §3.3.1: the same page with the code filled in, for a QR code or a link.
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": lifetime,
            "interval": POLL_INTERVAL,
        }
        return 200, data, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]

    def generate_device_code(self):
        """256 bits: the device code is the client's bearer secret while it polls (§5.2)."""
        return secrets.token_urlsafe(32)

    def get_verification_uri(self):
        """``{issuer base}/activate``, where Okta has its page too."""
        return f"{state().settings.issuer_base_url}/activate"


class DeviceCodeGrant(_DeviceCodeGrant):
    """RFC 8628 §3.4–3.5 at the token endpoint: the poll's answer, and the tokens once."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]

    def validate_token_request(self):
        """Authenticate the client, find its device code, and answer by the user's decision.

        Authlib's version calls an unknown code ``invalid_request``; it is
        an invalid grant (RFC 6749 §5.2), as another client's code is.  An
        approved code is redeemed here, atomically: a second poll after the
        tokens gets ``invalid_grant``, never a second set.
        """
        device_code = self.request.payload.data.get("device_code")
        if not isinstance(device_code, str) or not device_code:
            raise InvalidRequestError("Missing 'device_code'.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("This client is not allowed the device authorization grant.")
        found = device_store().by_device_code(device_code) if len(device_code) <= 512 else None
        if found is None or found[1]["client_id"] != client.get_client_id():
            raise InvalidGrantError("Unknown device_code.")
        digest, record = found
        credential = DeviceCredentialDict({**record, "digest": digest})
        decision = self.validate_device_credential(credential)
        if not device_store().redeem(digest):
            raise InvalidGrantError("This device code was already used.")
        self.request.user = state().users.get(decision["username"].lower())
        if self.request.user is None:
            raise InvalidGrantError("The user who approved is no longer known.")
        self.request.client = client
        self.request.credential = credential
        self.request.scope = record["scope"]
        self.request.family = new_id()
        self.request.auth_time = decision.get("auth_time")

    def validate_device_credential(self, credential):
        """§3.5, in order: expired, decided (Allow or Deny), polled too soon, still pending."""
        if credential.is_expired():
            raise ExpiredTokenError("The device code has expired; start again.")
        store = device_store()
        decision = store.decision(credential["digest"])
        if decision is not None:
            if not decision.get("approved"):
                raise AccessDeniedError("The user denied the request.")
            return decision
        if store.too_fast(credential["digest"], credential["interval"]):
            raise SlowDownError("Polling too often: wait 5 seconds longer between requests.")
        raise AuthorizationPendingError("The user has not finished yet.")


def register_device_grant(server) -> None:
    """Register the grant (with ID tokens) and the endpoint on the app's authorization server."""
    server.register_grant(DeviceCodeGrant, [OpenIDToken()])
    server.register_endpoint(DeviceAuthorizationEndpoint)


device_protocol.before_request(refuse_unreadable_client_credentials)
register_protocol_error_handlers(device_protocol)


@device_protocol.route("/v1/device/authorize", methods=["GET", "POST"])
def device_authorize():
    """The device authorization endpoint (RFC 8628 §3.1): POST, form body, client id."""
    if request.method != "POST":
        return post_only("device authorization")
    return authorization_server().create_endpoint_response("device_authorization")
