"""DPoP (RFC 9449) on the fake issuer, for unit tests of the clients: an Okta-like token endpoint and API.

:class:`DPoPFakeIssuer` scripts a :class:`tests.fake_issuer.FakeIssuer`:

* discovery advertises ``dpop_signing_alg_values_supported``;
* the token endpoint checks a proof with :func:`common.dpop.verify_proof`,
  answers ``400 use_dpop_nonce`` with a ``DPoP-Nonce`` header to a proof
  without its current nonce (as Okta does), and issues ``token_type: DPoP``
  access tokens with ``cnf.jkt``; refresh tokens issued with a proof are
  bound to its key (RFC 9449 §5);
* the revocation endpoint records the proofs it got;
* the API stand-in (``/api/messages``) accepts a bound token only with
  ``Authorization: DPoP`` and a valid proof with ``ath`` and the right key,
  and with ``api_nonce`` set asks for its nonce with ``401``.

Every proof that arrived is in :attr:`DPoPFakeIssuer.proofs` (endpoint, verified claims).
"""

from __future__ import annotations

import threading

from common.dpop import InvalidProof, verify_proof
from common.inspector import decode_unverified
from tests.fake_issuer import FakeIssuer, Reply


class MemoryReplay:
    """``jti`` single use, in memory (the real servers keep them in Redis)."""

    def __init__(self):
        self.seen: set[tuple[str, str]] = set()
        self.lock = threading.Lock()

    def first_use(self, jkt: str, jti: str, window: int) -> bool:
        with self.lock:
            if (jkt, jti) in self.seen:
                return False
            self.seen.add((jkt, jti))
            return True


class DPoPFakeIssuer:
    """The fake issuer and its API stand-in, speaking DPoP.

    :param fake: the fake issuer to script.
    :param nonce: the token endpoint's nonce (``None``: no nonce demanded).
    :param api_nonce: the API's nonce (``None``: none demanded).
    """

    def __init__(
        self, fake: FakeIssuer, *, nonce: str | None = "issuer-nonce-1", api_nonce: str | None = None
    ):
        self.fake = fake
        self.nonce = nonce
        self.api_nonce = api_nonce
        self.replay = MemoryReplay()
        self.proofs: list[tuple[str, dict]] = []
        self.refresh_jkt: dict[str, str] = {}
        fake.discovery_overrides["dpop_signing_alg_values_supported"] = ["ES256", "RS256"]
        fake.script("token", self.token)
        fake.script("revoke", self.revoke)
        fake.script("api", self.api)
        fake.script("userinfo", self.userinfo)

    def _verify(self, request, endpoint: str, **kwargs):
        proof = verify_proof(
            request.headers.get("DPoP"),
            method=request.method,
            url=self.fake.base_url + request.path,
            replay=self.replay,
            leeway=60,
            **kwargs,
        )
        self.proofs.append((endpoint, proof.claims))
        return proof

    def token(self, request) -> Reply:
        """The token endpoint: Bearer without a proof; with one, nonce first, then a bound token."""
        if "DPoP" not in request.headers:
            return self.fake._token(request)
        try:
            proof = self._verify(request, "token")
        except InvalidProof as exc:
            return Reply(400, {"error": "invalid_dpop_proof", "error_description": exc.description})
        if self.nonce and proof.claims.get("nonce") != self.nonce:
            # RFC 9449 §8: "use_dpop_nonce", with the nonce to use.
            return Reply(
                400,
                {
                    "error": "use_dpop_nonce",
                    "error_description": "Authorization server requires nonce in DPoP proof.",
                },
                {"DPoP-Nonce": self.nonce},
            )
        presented = request.form.get("refresh_token")
        if presented in self.refresh_jkt and self.refresh_jkt[presented] != proof.jkt:
            return Reply(
                400,
                {"error": "invalid_dpop_proof", "error_description": "refresh token bound to another key"},
            )
        self.fake.access_token_extra = {"cnf": {"jkt": proof.jkt}}
        try:
            reply = self.fake._token(request)
        finally:
            self.fake.access_token_extra = {}
        if reply.status == 200:
            reply.body["token_type"] = "DPoP"
            if reply.body.get("refresh_token"):
                self.refresh_jkt[reply.body["refresh_token"]] = proof.jkt
        return reply

    def revoke(self, request) -> Reply:
        """Revocation: records the proof (if any), then revokes as the fake does."""
        if "DPoP" in request.headers:
            try:
                self._verify(request, "revoke")
            except InvalidProof as exc:
                return Reply(400, {"error": "invalid_dpop_proof", "error_description": exc.description})
        return self.fake._default("revoke", request)

    def _resource(self, request, endpoint: str, nonce: str | None) -> Reply | None:
        """RFC 9449 §7.1 at a resource: the DPoP scheme, a proof with ath and the token's key."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "DPoP" or token not in self.fake.access_tokens:
            return Reply(401, {"error": "invalid_token"}, {"WWW-Authenticate": 'DPoP error="invalid_token"'})
        jkt = decode_unverified(token)[1].get("cnf", {}).get("jkt")
        try:
            proof = self._verify(request, endpoint, access_token=token, expected_jkt=jkt)
        except InvalidProof as exc:
            return Reply(
                401,
                {"error": exc.error},
                {"WWW-Authenticate": f'DPoP error="invalid_dpop_proof", check="{exc.check}"'},
            )
        if nonce and proof.claims.get("nonce") != nonce:
            return Reply(
                401,
                {"error": "use_dpop_nonce"},
                {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": nonce},
            )
        return None

    def api(self, request) -> Reply:
        """The API stand-in: DPoP-bound tokens only."""
        refusal = self._resource(request, "api", self.api_nonce)
        return refusal or Reply(200, {"messages": [{"text": "hello from the fake API, with DPoP"}]})

    def userinfo(self, request) -> Reply:
        """UserInfo, for DPoP-bound tokens (RFC 9449 §7.1)."""
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return self.fake._userinfo(request)
        refusal = self._resource(request, "userinfo", None)
        return refusal or Reply(200, dict(self.fake.user))
