"""The settings table: one row per environment variable of the suite.

Each row says the variable's development default, the check its value
passes (:mod:`common.config_checks`), the components that read it, and
what it means.  :mod:`common.config` loads the rows of one component.
Adding a setting is adding a row here (and a line in ``.env.example``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config_checks import (
    DEV_ISSUER_DEFAULT,
    Check,
    check_bind,
    check_directory,
    check_introspection_client,
    check_private_key,
    check_redis_url,
    check_scope,
    check_service_secret,
    check_trusted_mode,
    check_users,
    choice,
    number,
    secret,
    text,
    url,
)

#: The components that load settings, each by this name (``load_settings(component=...)``).
COMPONENTS = ("web_app", "spa_app", "native_sim", "service_app", "resource_server", "dev_issuer", "launcher")

# -- the table -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One row of the settings table.

    :ivar name: the environment variable; the attribute is its lower-case form.
    :ivar default: the development default, as the text the environment would hold.
    :ivar check: turns the raw text into the typed value, or raises :class:`ConfigError`.
    :ivar used_by: the components that read it (and so validate it at start-up).
    :ivar doc: what it means (``.env.example`` says the same at more length).
    :ivar secret: never shown in a ``repr``.
    """

    name: str
    default: str
    check: Check
    used_by: frozenset[str]
    doc: str
    secret: bool = False

    @property
    def attribute(self) -> str:
        """The ``Settings`` attribute that holds the value (``WEB_CLIENT_ID`` -> ``web_client_id``)."""
        return self.name.lower()


def _row(name: str, default: str, check: Check, used_by: str, doc: str, *, hidden: bool = False) -> Variable:
    components = frozenset(used_by.split())
    unknown = components - set(COMPONENTS)
    if unknown:
        raise ValueError(f"{name}: unknown components {sorted(unknown)}")
    return Variable(name, default, check, components, doc, secret=hidden)


# Component groups the rows below share.
_CALLERS = "web_app spa_app native_sim service_app resource_server"  # they call the issuer
_SESSIONS = "web_app spa_app service_app dev_issuer"  # they keep Redis sessions (spa_app: its BFF mode)

#: Every variable of the suite.  Every development secret says that it is
#: one, so nobody mistakes it for a real credential; real values come from
#: the environment or ``.env`` (see ``.env.example``).
VARIABLES: tuple[Variable, ...] = (
    _row(
        "ISSUER",
        DEV_ISSUER_DEFAULT,
        url(path_allowed=True),
        f"{_CALLERS} dev_issuer launcher",
        "the issuer URL; discovery at ISSUER/.well-known/openid-configuration",
    ),
    _row(
        "REDIS_URL",
        "",
        check_redis_url,
        f"{_SESSIONS} resource_server launcher",
        "Redis for sessions, the dev issuer's state and the API's used DPoP proofs; empty: the launcher "
        "starts an embedded Redis",
    ),
    _row(
        "INSTANCE_DIR",
        "",
        check_directory,
        f"{_SESSIONS} launcher",
        "where make run keeps its files (the embedded Redis, its password, suite.json); empty: instance/",
    ),
    _row(
        "SECRET_KEY",
        "dev-only-secret-key-do-not-use-in-production",
        secret(),
        _SESSIONS,
        "Flask's secret key (CSRF tokens)",
        hidden=True,
    ),
    _row("WEB_CLIENT_ID", "dev-web-app", text(), "web_app dev_issuer", "the web app's client id"),
    _row(
        "WEB_CLIENT_SECRET",
        "dev-web-app-secret-do-not-use-in-production",
        secret(),
        "web_app dev_issuer",
        "the web app's client secret (a confidential client cannot authenticate without it)",
        hidden=True,
    ),
    _row(
        "WEB_BASE_URL",
        "http://localhost:5001",
        url(),
        "web_app dev_issuer launcher",
        "the web app's origin; its redirect URI is {WEB_BASE_URL}/authorization-code/callback",
    ),
    _row("SPA_CLIENT_ID", "dev-spa-app", text(), "spa_app dev_issuer", "the single-page app's client id"),
    _row(
        "SPA_BASE_URL",
        "http://localhost:5002",
        url(),
        "spa_app resource_server dev_issuer launcher",
        "the SPA's origin: its redirect URI is {SPA_BASE_URL}/login/callback, the only CORS origin allowed",
    ),
    _row(
        "SPA_BFF_CLIENT_ID",
        "spa-bff-dev-client",
        text(),
        "spa_app dev_issuer",
        "the SPA's backend-for-frontend client id (a confidential Web app at the issuer)",
    ),
    _row(
        "SPA_BFF_CLIENT_SECRET",
        "spa-bff-dev-secret-do-not-use-in-production",
        secret(),
        "spa_app dev_issuer",
        "the backend-for-frontend's client secret; its redirect URI is {SPA_BASE_URL}/bff/callback",
        hidden=True,
    ),
    _row("NATIVE_CLIENT_ID", "dev-native-app", text(), "native_sim dev_issuer", "the native app's client id"),
    _row(
        "NATIVE_REDIRECT_PORT",
        "5003",
        number(0, 65535),
        "native_sim dev_issuer",
        "the loopback redirect's port (RFC 8252 §7.3); 0 = any free port where the issuer allows it",
    ),
    _row(
        "NATIVE_TOKEN_DIR",
        "",
        check_directory,
        "native_sim",
        "where the native app keeps tokens; empty: the OS keyring, else the user's config directory",
    ),
    _row(
        "TRUSTED_CLIENT_ID",
        "dev-trusted-app",
        text(),
        "native_sim dev_issuer",
        "the trusted app's client id (password grant)",
    ),
    _row(
        "TRUSTED_CLIENT_SECRET",
        "dev-trusted-app-secret-do-not-use-in-production",
        secret(),
        "native_sim dev_issuer",
        "the trusted app's client secret",
        hidden=True,
    ),
    _row(
        "TRUSTED_MODE",
        "auto",
        check_trusted_mode,
        "native_sim dev_issuer",
        "whether the password grant is offered and used: true, false, auto (on against the dev issuer)",
    ),
    _row("SERVICE_CLIENT_ID", "dev-service-app", text(), "service_app dev_issuer", "the service's client id"),
    _row(
        "SERVICE_CLIENT_SECRET",
        "dev-service-app-secret-do-not-use-in-production",
        check_service_secret,
        "service_app dev_issuer",
        "the service's client secret; may be empty with SERVICE_PRIVATE_KEY",
        hidden=True,
    ),
    _row(
        "SERVICE_PRIVATE_KEY",
        "",
        check_private_key,
        "service_app dev_issuer",
        "a PEM or JWK file: the service authenticates with private_key_jwt (RFC 7523), not its secret",
    ),
    _row(
        "SERVICE_SCOPE",
        "customScope",
        check_scope,
        "service_app resource_server dev_issuer",
        "the custom scope the service asks for and the API requires",
    ),
    _row(
        "SERVICE_BASE_URL",
        "http://localhost:5004",
        url(),
        "service_app launcher",
        "the service app's status page",
    ),
    _row(
        "API_URL",
        "http://localhost:5005",
        url(),
        "web_app spa_app native_sim service_app resource_server launcher",
        "the resource server's origin, as its callers reach it (the API checks DPoP proofs' htu against it)",
    ),
    _row(
        "API_AUDIENCE",
        "api://default",
        text(),
        "resource_server dev_issuer",
        "the audience (aud) the API's access tokens carry",
    ),
    _row(
        "API_VALIDATION",
        "jwt",
        choice("jwt", "introspection"),
        "resource_server",
        "jwt (local, with the issuer's keys) or introspection (RFC 7662)",
    ),
    _row(
        "API_INTROSPECTION_CLIENT_ID",
        "",
        check_introspection_client,
        "resource_server dev_issuer",
        "the client id the API authenticates with at the introspection endpoint",
    ),
    _row(
        "API_INTROSPECTION_CLIENT_SECRET",
        "",
        secret(required=False),
        "resource_server dev_issuer",
        "its secret",
        hidden=True,
    ),
    _row(
        "DEMO_USERNAME",
        "testuser1@example.com",
        text(),
        "dev_issuer launcher",
        "the dev issuer's seeded user (printed by make run)",
    ),
    _row(
        "DEMO_PASSWORD",
        "Dev-Only-Passw0rd!",
        secret(),
        "dev_issuer launcher",
        "the seeded user's password",
        hidden=True,
    ),
    _row(
        "HTTP_TIMEOUT",
        "5",
        number(0.1, 120, kind=float),
        _CALLERS,
        "seconds any call to the issuer or the API may take",
    ),
    _row(
        "SESSION_LIFETIME",
        "28800",
        number(60, 7 * 24 * 3600),
        _SESSIONS,
        "seconds a server-side session lives",
    ),
    _row(
        "LOGIN_TIMEOUT",
        "600",
        number(10, 3600),
        _CALLERS,
        "seconds a sign-in may take, from the authorization request to the callback",
    ),
    _row(
        "CLOCK_LEEWAY",
        "60",
        number(0, 300),
        f"{_CALLERS} dev_issuer",
        "seconds of clock skew tolerated on exp, iat and nbf",
    ),
    _row(
        "DEV_ISSUER_CODE_LIFETIME",
        "60",
        number(1, 600),
        "dev_issuer",
        "seconds an authorization code lives (RFC 6749 §4.1.2: short)",
    ),
    _row(
        "DEV_ISSUER_ACCESS_TOKEN_LIFETIME",
        "3600",
        number(1, 86400),
        "dev_issuer",
        "seconds an access token lives",
    ),
    _row(
        "DEV_ISSUER_REFRESH_TOKEN_LIFETIME",
        "604800",
        number(1, 90 * 86400),
        "dev_issuer",
        "seconds a refresh token lives",
    ),
    _row(
        "DEV_ISSUER_EXTRA_USERS",
        "",
        check_users,
        "dev_issuer",
        "more seeded users, as user@example.com:password pairs separated by commas",
    ),
    # -- second round: DPoP (RFC 9449), PAR (RFC 9126), deployment -----------------------------------
    _row(
        "DPOP",
        "auto",
        choice("auto", "on", "off"),
        "web_app spa_app native_sim service_app",
        "sender-constrained tokens (RFC 9449): auto (when the issuer advertises "
        "dpop_signing_alg_values_supported), on (always; an error when the issuer cannot), off",
    ),
    _row(
        "API_DPOP",
        "optional",
        choice("optional", "required"),
        "resource_server",
        "optional: Bearer tokens accepted, DPoP-bound ones only with a valid proof; required: DPoP only",
    ),
    _row(
        "API_DPOP_NONCE",
        "off",
        choice("off", "on"),
        "resource_server",
        "on: the API demands its own DPoP nonce (RFC 9449 §9: 401 use_dpop_nonce with DPoP-Nonce); off",
    ),
    _row(
        "DEV_ISSUER_REQUIRE_DPOP",
        "",
        text(required=False),
        "dev_issuer",
        "client ids (comma-separated, or all) whose token requests must carry a DPoP proof",
    ),
    _row(
        "PAR",
        "auto",
        choice("auto", "on", "off"),
        "web_app spa_app native_sim",
        "pushed authorization requests (RFC 9126): auto (when the issuer advertises "
        "pushed_authorization_request_endpoint), on, off",
    ),
    _row(
        "DEV_ISSUER_REQUIRE_PAR",
        "",
        text(required=False),
        "dev_issuer",
        "client ids (comma-separated, or all) that must push their authorization requests (RFC 9126)",
    ),
    _row(
        "DEV_ISSUER_PAR_LIFETIME",
        "60",
        number(1, 600),
        "dev_issuer",
        "seconds a pushed authorization request's request_uri lives (RFC 9126 §2.2: short)",
    ),
    _row("WEB_BIND", "", check_bind, "web_app launcher", "host:port the web app listens on"),
    _row("SPA_BIND", "", check_bind, "spa_app launcher", "host:port the SPA's server listens on"),
    _row("SERVICE_BIND", "", check_bind, "service_app launcher", "host:port the service listens on"),
    _row("API_BIND", "", check_bind, "resource_server launcher", "host:port the API listens on"),
    _row("ISSUER_BIND", "", check_bind, "dev_issuer launcher", "host:port the dev issuer listens on"),
    _row(
        "TRUSTED_PROXIES",
        "0",
        number(0, 10),
        "web_app spa_app service_app resource_server dev_issuer launcher",
        "how many reverse proxies in front to trust for X-Forwarded-* (0: ignore those headers)",
    ),
    # -- second round: the device authorization grant (RFC 8628) -------------------------------------
    _row(
        "DEV_ISSUER_DEVICE_CODE_LIFETIME",
        "600",
        number(1, 1800),
        "dev_issuer",
        "seconds a device code and its user code live (RFC 8628 §3.2 expires_in; Okta: 10 minutes)",
    ),
)

#: Development defaults, by variable name (the table's second column).
DEFAULTS: dict[str, str] = {variable.name: variable.default for variable in VARIABLES}

_BY_NAME = {variable.name: variable for variable in VARIABLES}


def variables_of(component: str | None) -> tuple[Variable, ...]:
    """The rows ``component`` reads, in table order; ``None``: every row."""
    if component is None:
        return VARIABLES
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; the components are {', '.join(COMPONENTS)}")
    return tuple(variable for variable in VARIABLES if component in variable.used_by)
