"""The client registry: the suite's applications as the issuer knows them.

Clients come from the same settings the apps read (one ``.env`` configures
both sides of every flow), so they live in memory and are the same in every
gunicorn worker.  Redirect URIs match exactly (RFC 9700 §4.1.3), except the
port of a native app's loopback redirect (RFC 8252 §7.3).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, scope_to_list
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

from common.config import Settings

#: Scopes a user-facing client may ask for (OpenID Connect Core 5.4 plus
#: ``offline_access`` for refresh tokens, §11).
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")

#: RFC 8252 §7.3: loopback redirect URIs use an IP literal; any port is
#: accepted for these at request time because the native app picks a free
#: port when it starts listening.
LOOPBACK_HOSTS = {"127.0.0.1", "[::1]"}


@dataclass
class Client(ClientMixin):
    """A registered application, shaped like an Okta app integration.

    :param kind: the suite's name for it (``web``, ``spa``, ``native`` ...),
        used for the ``app-{kind}`` ids on the Applications page.
    :param auth_methods: the client authentication methods it may use at
        the token, revocation and introspection endpoints (RFC 7591 §2).
    """

    client_id: str
    kind: str
    name: str
    client_type: str  # "confidential" or "public" (RFC 6749 §2.1)
    auth_methods: tuple[str, ...]
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = OIDC_SCOPES
    client_secret: str = ""
    public_jwk: dict | None = None
    #: RFC 9449 §5.2: this client's token requests must carry a DPoP proof (Okta's "Require DPoP").
    dpop_bound_access_tokens: bool = False
    introspect_any: bool = False
    #: RFC 9126 §5: its authorization requests must be pushed (``DEV_ISSUER_REQUIRE_PAR``).
    require_par: bool = False
    client_metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        # Authlib's RP-initiated logout and userinfo endpoints read RFC 7591
        # style metadata from here.
        self.client_metadata = {
            "client_name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": list(self.response_types),
            "token_endpoint_auth_method": self.auth_methods[0] if self.auth_methods else "none",
            "dpop_bound_access_tokens": self.dpop_bound_access_tokens,
        }

    @property
    def is_public(self) -> bool:
        return self.client_type == "public"

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        # OpenID Connect Core 3.1.2.1 makes redirect_uri REQUIRED, and with
        # a loopback client there is no single default: never guess.
        return None

    def get_allowed_scope(self, scope):
        """All of the requested scopes if this client may have each, else ``None``.

        Okta refuses a request for a scope the app may not have rather than
        quietly dropping it; so do we (RFC 6749 §3.3 allows either).
        """
        requested = scope_to_list(scope) or []
        if not requested:
            return None
        if not set(requested) <= set(self.scopes):
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri):
        """Exact string match, except the port of a loopback IP redirect.

        RFC 9700 §4.1.3 asks for exact matching; RFC 8252 §7.3 lets a
        native app's loopback redirect (``http://127.0.0.1:{port}/...``)
        use any port, so for those the port alone may differ.
        """
        if not isinstance(redirect_uri, str):
            return False
        if redirect_uri in self.redirect_uris:
            return True
        return any(loopback_match(registered, redirect_uri) for registered in self.redirect_uris)

    def check_client_secret(self, client_secret):
        if self.is_public or not self.client_secret or not isinstance(client_secret, str):
            return False
        return secrets.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint):
        return method in self.auth_methods

    def check_response_type(self, response_type):
        return response_type in self.response_types

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types


#: ``[0-9]``, not ``\d``: in Python ``\d`` also matches other scripts' digits
#: (``５００３``, ``٥٠٠٣``), which ``int()`` accepts but no URL parser or HTTP
#: header does; RFC 3986 §3.2.3 defines ``port = *DIGIT``, and ``DIGIT`` is
#: ASCII 0-9 (RFC 5234 Appendix B.1).
_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?(/[^?#]*)?(\?[^#]*)?$")


def loopback_match(registered: str, requested: str) -> bool:
    """True when both are the same http loopback IP redirect but for the port.

    Only ``127.0.0.1`` and ``[::1]`` qualify: ``localhost`` can be
    resolved to another interface, so RFC 8252 §8.3 says not to rely on it.
    """
    a, b = _LOOPBACK.match(registered), _LOOPBACK.match(requested)
    if not a or not b:
        return False
    if b.group(2) is not None and not 0 < int(b.group(2)) < 65536:
        return False
    host_path_query = (a.group(1), a.group(3) or "", a.group(4) or "")
    return host_path_query == (b.group(1), b.group(3) or "", b.group(4) or "")


def load_public_jwk(path: str) -> dict:
    """The public JWK of the service's key file (PEM or JWK, private or public).

    The issuer keeps only the public half: that is all ``private_key_jwt``
    needs (RFC 7523 §3), which is why it is the stronger option.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from joserfc.jwk import import_key

    raw = open(path, "rb").read().strip()
    if raw.startswith(b"{"):
        key = import_key(json.loads(raw))
    else:
        try:
            loaded = serialization.load_pem_private_key(raw, password=None)
        except ValueError:
            loaded = serialization.load_pem_public_key(raw)
        if isinstance(loaded, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            key_type = "RSA"
        elif isinstance(loaded, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
            key_type = "EC"
        else:
            key_type = "OKP"
        key = import_key(raw, key_type)
    public = key.as_dict(private=False)
    public.setdefault("kid", key.thumbprint())
    return public


def register_clients(settings: Settings) -> dict[str, Client]:
    """The clients of the suite, from the settings the apps themselves read.

    This is the README's "Add Application" step done once, in code, for
    every application type.
    """
    clients = [*user_facing_clients(settings), service_client(settings)]
    require_dpop(clients, settings.dev_issuer_require_dpop)
    if settings.api_introspection_client_id:
        clients.append(introspection_client(settings))
    must_push = {item.strip() for item in settings.dev_issuer_require_par.split(",") if item.strip()}
    for client in clients:
        # Okta's per-app "Require Pushed Authorization Requests" (RFC 9126 §5).
        client.require_par = "all" in must_push or client.client_id in must_push
    return {client.client_id: client for client in clients}


def require_dpop(clients: list[Client], setting: str) -> None:
    """Mark the clients ``DEV_ISSUER_REQUIRE_DPOP`` names (or ``all``) as DPoP-only (RFC 9449 §5.2).

    Okta's "Require DPoP" checkbox; ``dpop.require_proof`` enforces it.
    """
    named = {part.strip() for part in (setting or "").split(",") if part.strip()}
    for client in clients:
        if "all" in named or client.client_id in named:
            client.dpop_bound_access_tokens = True
            client.client_metadata["dpop_bound_access_tokens"] = True


def user_facing_clients(settings: Settings) -> list[Client]:
    """The web app, the SPA (and its backend for frontend), the native app and the trusted app.

    They get the OpenID scopes alone: the custom scope (``SERVICE_SCOPE``)
    guards the API's service-only route, so a user's token cannot call it:
    least privilege, RFC 9700 §2.3 ("privileges of access tokens SHOULD be
    restricted to the minimum required").
    """
    return [
        Client(
            client_id=settings.web_client_id,
            kind="web",
            name="Web app (server-side)",
            client_type="confidential",
            client_secret=settings.web_client_secret,
            auth_methods=("client_secret_basic", "client_secret_post"),
            grant_types=("authorization_code", "refresh_token"),
            response_types=("code",),
            redirect_uris=(settings.web_redirect_uri,),
            post_logout_redirect_uris=(settings.web_post_logout_redirect_uri,),
        ),
        Client(
            client_id=settings.spa_client_id,
            kind="spa",
            name="Single-page app",
            client_type="public",
            auth_methods=("none",),
            grant_types=("authorization_code", "refresh_token", "implicit"),
            response_types=("code", "token", "id_token", "id_token token"),
            redirect_uris=(settings.spa_redirect_uri,),
            post_logout_redirect_uris=(settings.spa_post_logout_redirect_uri,),
        ),
        spa_bff_client(settings),
        Client(
            client_id=settings.native_client_id,
            kind="native",
            name="Native app",
            client_type="public",
            auth_methods=("none",),
            # RFC 8628: `native_sim device-login` too, as Okta's "Device Authorization" grant type.
            grant_types=("authorization_code", "refresh_token", DEVICE_CODE_GRANT_TYPE),
            response_types=("code",),
            redirect_uris=(settings.native_redirect_uri(),),
        ),
        Client(
            client_id=settings.trusted_client_id,
            kind="trusted",
            name="Trusted app (password grant, deprecated)",
            client_type="confidential",
            client_secret=settings.trusted_client_secret,
            auth_methods=("client_secret_basic",),
            # The password grant exists only while TRUSTED_MODE is on: it
            # hands the user's password to the app (RFC 9700 §2.4).
            grant_types=(("password",) if settings.trusted_mode else ()) + ("refresh_token",),
        ),
    ]


def spa_bff_client(settings: Settings) -> Client:
    """The SPA's backend for frontend: a confidential Web app (as at Okta), ``client_secret_basic``.

    Its server keeps the tokens, so the browser never calls the issuer's
    endpoints for it: no CORS (Trusted Origin) is needed.
    """
    return Client(
        client_id=settings.spa_bff_client_id,
        kind="spa-bff",
        name="Single-page app's backend for frontend (Web app)",
        client_type="confidential",
        client_secret=settings.spa_bff_client_secret,
        auth_methods=("client_secret_basic",),
        grant_types=("authorization_code", "refresh_token"),
        response_types=("code",),
        redirect_uris=(settings.spa_bff_redirect_uri,),
        post_logout_redirect_uris=(settings.spa_post_logout_redirect_uri,),
    )


def service_client(settings: Settings) -> Client:
    """The machine-to-machine client: its custom scope, a secret or ``private_key_jwt``.

    With ``SERVICE_PRIVATE_KEY`` set it authenticates with a signed
    assertion only (RFC 7523 §2.2), and no secret is registered at all.
    """
    if settings.service_private_key:
        auth_methods, public_jwk = ("private_key_jwt",), load_public_jwk(settings.service_private_key)
    else:
        auth_methods, public_jwk = ("client_secret_basic",), None
    return Client(
        client_id=settings.service_client_id,
        kind="service",
        name="Service (machine to machine)",
        client_type="confidential",
        client_secret=settings.service_client_secret if not public_jwk else "",
        auth_methods=auth_methods,
        grant_types=("client_credentials",),
        scopes=tuple(settings.service_scope.split()),
        public_jwk=public_jwk,
    )


def introspection_client(settings: Settings) -> Client:
    """The resource server's client: no grant, may introspect any token (RFC 7662 §2.1)."""
    return Client(
        client_id=settings.api_introspection_client_id,
        kind="api",
        name="Resource server (introspection only)",
        client_type="confidential",
        client_secret=settings.api_introspection_client_secret,
        auth_methods=("client_secret_basic", "client_secret_post"),
        grant_types=(),
        scopes=(),
        introspect_any=True,
    )


def origin_and_wildcard(uri: str) -> str:
    """The CSP source for a redirect URI: its origin, any port for loopback."""
    parts = urlsplit(uri)
    host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    if f"{host}" in LOOPBACK_HOSTS and parts.scheme == "http":
        return f"http://{host}:*"
    return f"{parts.scheme}://{parts.netloc}"
