"""Settings for every part of the suite, read once and validated.

One module reads the environment (and a ``.env`` file if present) so that
the apps and the development issuer agree on client ids, secrets and URLs:
one ``.env`` configures both sides of every flow.

Precedence, lowest first: the development defaults below, ``.env``, the
process environment, then the ``test_config`` mapping an app factory
receives.  A missing or malformed value raises :class:`ConfigError`, whose
message is one line that names the variable and says how to fix it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from dotenv import dotenv_values

#: The project root: ``.env`` and ``instance/`` live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Where the development issuer lives unless ``ISSUER`` says otherwise.
DEV_ISSUER_DEFAULT = "http://localhost:9000/oauth2/default"

#: Development defaults.  Every secret here says that it is one, so nobody
#: mistakes it for a real credential; real values come from the
#: environment or ``.env`` (see ``.env.example``).
DEFAULTS: dict[str, str] = {
    "ISSUER": DEV_ISSUER_DEFAULT,
    "REDIS_URL": "",
    "SECRET_KEY": "dev-only-secret-key-do-not-use-in-production",
    "WEB_CLIENT_ID": "dev-web-app",
    "WEB_CLIENT_SECRET": "dev-web-app-secret-do-not-use-in-production",
    "WEB_BASE_URL": "http://localhost:5001",
    "SPA_CLIENT_ID": "dev-spa-app",
    "SPA_BASE_URL": "http://localhost:5002",
    "NATIVE_CLIENT_ID": "dev-native-app",
    "NATIVE_REDIRECT_PORT": "5003",
    "NATIVE_TOKEN_DIR": "",
    "TRUSTED_CLIENT_ID": "dev-trusted-app",
    "TRUSTED_CLIENT_SECRET": "dev-trusted-app-secret-do-not-use-in-production",
    "TRUSTED_MODE": "auto",
    "SERVICE_CLIENT_ID": "dev-service-app",
    "SERVICE_CLIENT_SECRET": "dev-service-app-secret-do-not-use-in-production",
    "SERVICE_PRIVATE_KEY": "",
    "SERVICE_SCOPE": "customScope",
    "SERVICE_BASE_URL": "http://localhost:5004",
    "API_URL": "http://localhost:5005",
    "API_AUDIENCE": "api://default",
    "API_VALIDATION": "jwt",
    "API_INTROSPECTION_CLIENT_ID": "",
    "API_INTROSPECTION_CLIENT_SECRET": "",
    "DEMO_USERNAME": "testuser1@example.com",
    "DEMO_PASSWORD": "Dev-Only-Passw0rd!",
    "HTTP_TIMEOUT": "5",
    "SESSION_LIFETIME": "28800",
    "LOGIN_TIMEOUT": "600",
    "CLOCK_LEEWAY": "60",
    "DEV_ISSUER_CODE_LIFETIME": "60",
    "DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "3600",
    "DEV_ISSUER_REFRESH_TOKEN_LIFETIME": "604800",
    "DEV_ISSUER_EXTRA_USERS": "",
}

_PLACEHOLDER = re.compile(r"[{}<>]|\byour[A-Z_]|\.\.\.")


class ConfigError(ValueError):
    """A setting is missing or malformed.

    ``str(error)`` is one line: the variable, what is wrong, how to fix it.
    """

    def __init__(self, variable: str, problem: str, fix: str):
        self.variable = variable
        super().__init__(f"{variable}: {problem}. {fix}")


@dataclass(frozen=True)
class Settings:
    """Typed, validated settings for the whole suite."""

    issuer: str
    redis_url: str  # empty: the launcher starts an embedded Redis
    secret_key: str
    web_client_id: str
    web_client_secret: str
    web_base_url: str
    spa_client_id: str
    spa_base_url: str
    native_client_id: str
    native_redirect_port: int
    native_token_dir: str  # empty: the OS keyring, else the user's config directory
    trusted_client_id: str
    trusted_client_secret: str
    trusted_mode: bool  # TRUSTED_MODE=auto: on against the bundled dev issuer only
    service_client_id: str
    service_client_secret: str
    service_private_key: str  # path to a PEM or JWK file; empty: client_secret_basic
    service_scope: str
    service_base_url: str
    api_url: str
    api_audience: str
    api_validation: str  # "jwt" (local, JWKS) or "introspection" (RFC 7662)
    api_introspection_client_id: str
    api_introspection_client_secret: str
    demo_username: str
    demo_password: str
    http_timeout: float
    session_lifetime: int
    login_timeout: int
    clock_leeway: int
    dev_issuer_code_lifetime: int
    dev_issuer_access_token_lifetime: int
    dev_issuer_refresh_token_lifetime: int
    dev_issuer_extra_users: tuple[tuple[str, str], ...]  # (username, password) pairs besides the demo user

    # -- derived values: the fixed redirect paths of DESIGN.md -------------

    @property
    def uses_dev_issuer(self) -> bool:
        """True when ``ISSUER`` is a local URL shaped like the dev issuer's."""
        return _is_dev_issuer(self.issuer)

    @property
    def issuer_base_url(self) -> str:
        """The dev issuer's origin: ``ISSUER`` without ``/oauth2/default``."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def web_redirect_uri(self) -> str:
        return f"{self.web_base_url}/authorization-code/callback"

    @property
    def web_post_logout_redirect_uri(self) -> str:
        return f"{self.web_base_url}/"

    @property
    def spa_redirect_uri(self) -> str:
        return f"{self.spa_base_url}/login/callback"

    @property
    def spa_post_logout_redirect_uri(self) -> str:
        return f"{self.spa_base_url}/"

    @property
    def spa_origin(self) -> str:
        return origin_of(self.spa_base_url)

    def native_redirect_uri(self, port: int | None = None) -> str:
        """The loopback redirect URI of RFC 8252 §7.3 (IP literal, not ``localhost``)."""
        return f"http://127.0.0.1:{self.native_redirect_port if port is None else port}/callback"

    def as_environ(self) -> dict[str, str]:
        """The settings as environment variables, for child processes."""
        env = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif field.name == "dev_issuer_extra_users":
                value = ",".join(f"{user}:{password}" for user, password in value)
            env[field.name.upper()] = str(value)
        return env


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL (RFC 6454), lower-cased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _check_url(name: str, value: str, *, path_allowed: bool) -> str:
    if _PLACEHOLDER.search(value):
        raise ConfigError(
            name,
            f"{value!r} still contains a placeholder",
            "Replace it with a real URL, e.g. https://dev-123456.okta.com/oauth2/default",
        )
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(name, f"{value!r} is not an http(s) URL", "Set it to an absolute URL such as http://localhost:5001")
    if parts.query or parts.fragment:
        raise ConfigError(name, f"{value!r} has a query or fragment", "Remove everything from '?' or '#' on")
    try:
        parts.port
    except ValueError:
        raise ConfigError(name, f"{value!r} has an invalid port", "Use a port between 1 and 65535") from None
    if parts.scheme == "http" and parts.hostname not in {"localhost", "127.0.0.1", "::1"} and not parts.hostname.endswith(".test"):
        # RFC 9700 §2.6 / RFC 6749 §3.1.2.1: tokens and codes only over TLS,
        # except on the loopback interface where nothing leaves the machine.
        raise ConfigError(name, f"{value!r} uses plain http for a non-local host", "Use https:// for anything that is not localhost")
    if not path_allowed and parts.path not in {"", "/"}:
        raise ConfigError(name, f"{value!r} has a path", "Give only the origin, e.g. http://localhost:5001")
    return value if path_allowed else value.rstrip("/")


def _check_number(name: str, value: str, low: float, high: float, kind: type = int):
    """A whole number (``kind=int``) or a number of seconds (``kind=float``) in range."""
    try:
        number = kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(name, f"{value!r} is not {what}", f"Set a number from {low} to {high}") from None
    if not low <= number <= high:
        raise ConfigError(name, f"{number} is out of range", f"Set a number from {low} to {high}")
    return number


def _is_dev_issuer(issuer: str) -> bool:
    """A local URL shaped like the bundled dev issuer's (``/oauth2/default``)."""
    parts = urlsplit(issuer)
    return parts.hostname in {"localhost", "127.0.0.1"} and parts.path == "/oauth2/default"


def _check_trusted_mode(value: str, issuer: str) -> bool:
    """``TRUSTED_MODE``: true, false, or auto (the default).

    The password grant is deprecated (RFC 9700 §2.4) and off unless enabled.
    ``auto`` enables it only against the bundled dev issuer, so that the
    trusted-app walkthrough runs after ``make run`` while a real issuer
    never sees a password unless someone asked for it explicitly.
    """
    if value.strip().lower() == "auto":
        return _is_dev_issuer(issuer)
    return _check_bool("TRUSTED_MODE", value)


def _check_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(name, f"{value!r} is not a yes/no value", "Set true or false")


def _check_text(name: str, value: str, *, required: bool = True, secret: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise ConfigError(name, "is empty", f"Set {name} in the environment or in .env (see .env.example)")
    # A real secret or password may well contain "<", "{" or "...": only
    # ids and names are checked for copy-paste placeholders.
    if not secret and _PLACEHOLDER.search(value):
        raise ConfigError(name, f"{value!r} still contains a placeholder", f"Copy the real value from your issuer's console into {name}")
    return value


def read_environment(env_file: Path | None = None) -> dict[str, str]:
    """Defaults, overlaid with ``.env``, overlaid with the process environment."""
    values = dict(DEFAULTS)
    env_file = PROJECT_ROOT / ".env" if env_file is None else env_file
    if env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if k in DEFAULTS and v is not None})
    values.update({k: v for k, v in os.environ.items() if k in DEFAULTS})
    return values


def load_settings(overrides: Mapping[str, object] | None = None) -> Settings:
    """Read and validate the settings.

    :param overrides: values that win over everything else (an app
        factory's ``test_config``); keys not in the contract are ignored.
    :return: the validated :class:`Settings`.
    :raises ConfigError: naming the first bad variable.
    """
    raw = read_environment()
    for key, value in (overrides or {}).items():
        if key in DEFAULTS:
            raw[key] = "" if value is None else str(value)

    issuer = _check_url("ISSUER", raw["ISSUER"].strip(), path_allowed=True)
    redis_url = raw["REDIS_URL"].strip()
    if redis_url and urlsplit(redis_url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("REDIS_URL", f"{redis_url!r} is not a Redis URL", "Use redis://host:port/db, or leave it unset for the embedded Redis")

    settings = Settings(
        issuer=issuer,
        redis_url=redis_url,
        secret_key=_check_text("SECRET_KEY", raw["SECRET_KEY"], secret=True),
        web_client_id=_check_text("WEB_CLIENT_ID", raw["WEB_CLIENT_ID"]),
        # A confidential client cannot authenticate without its secret.
        web_client_secret=_check_text("WEB_CLIENT_SECRET", raw["WEB_CLIENT_SECRET"], secret=True),
        web_base_url=_check_url("WEB_BASE_URL", raw["WEB_BASE_URL"].strip(), path_allowed=False),
        spa_client_id=_check_text("SPA_CLIENT_ID", raw["SPA_CLIENT_ID"]),
        spa_base_url=_check_url("SPA_BASE_URL", raw["SPA_BASE_URL"].strip(), path_allowed=False),
        native_client_id=_check_text("NATIVE_CLIENT_ID", raw["NATIVE_CLIENT_ID"]),
        native_redirect_port=_check_number("NATIVE_REDIRECT_PORT", raw["NATIVE_REDIRECT_PORT"], 0, 65535),
        native_token_dir=_check_directory("NATIVE_TOKEN_DIR", raw["NATIVE_TOKEN_DIR"].strip()),
        trusted_client_id=_check_text("TRUSTED_CLIENT_ID", raw["TRUSTED_CLIENT_ID"]),
        trusted_client_secret=_check_text("TRUSTED_CLIENT_SECRET", raw["TRUSTED_CLIENT_SECRET"], secret=True),
        trusted_mode=_check_trusted_mode(raw["TRUSTED_MODE"], issuer),
        service_client_id=_check_text("SERVICE_CLIENT_ID", raw["SERVICE_CLIENT_ID"]),
        service_client_secret=_check_text("SERVICE_CLIENT_SECRET", raw["SERVICE_CLIENT_SECRET"], secret=True, required=not raw["SERVICE_PRIVATE_KEY"].strip()),
        service_private_key=_check_private_key(raw["SERVICE_PRIVATE_KEY"].strip()),
        service_scope=_check_scope(raw["SERVICE_SCOPE"]),
        service_base_url=_check_url("SERVICE_BASE_URL", raw["SERVICE_BASE_URL"].strip(), path_allowed=False),
        api_url=_check_url("API_URL", raw["API_URL"].strip(), path_allowed=False),
        api_audience=_check_text("API_AUDIENCE", raw["API_AUDIENCE"]),
        api_validation=_check_choice("API_VALIDATION", raw["API_VALIDATION"], {"jwt", "introspection"}),
        api_introspection_client_id=_check_text("API_INTROSPECTION_CLIENT_ID", raw["API_INTROSPECTION_CLIENT_ID"], required=False),
        api_introspection_client_secret=_check_text("API_INTROSPECTION_CLIENT_SECRET", raw["API_INTROSPECTION_CLIENT_SECRET"], secret=True, required=False),
        demo_username=_check_text("DEMO_USERNAME", raw["DEMO_USERNAME"]),
        demo_password=_check_text("DEMO_PASSWORD", raw["DEMO_PASSWORD"], secret=True),
        http_timeout=_check_number("HTTP_TIMEOUT", raw["HTTP_TIMEOUT"], 0.1, 120, kind=float),
        session_lifetime=_check_number("SESSION_LIFETIME", raw["SESSION_LIFETIME"], 60, 7 * 24 * 3600),
        login_timeout=_check_number("LOGIN_TIMEOUT", raw["LOGIN_TIMEOUT"], 10, 3600),
        clock_leeway=_check_number("CLOCK_LEEWAY", raw["CLOCK_LEEWAY"], 0, 300),
        dev_issuer_code_lifetime=_check_number("DEV_ISSUER_CODE_LIFETIME", raw["DEV_ISSUER_CODE_LIFETIME"], 1, 600),
        dev_issuer_access_token_lifetime=_check_number("DEV_ISSUER_ACCESS_TOKEN_LIFETIME", raw["DEV_ISSUER_ACCESS_TOKEN_LIFETIME"], 1, 86400),
        dev_issuer_refresh_token_lifetime=_check_number("DEV_ISSUER_REFRESH_TOKEN_LIFETIME", raw["DEV_ISSUER_REFRESH_TOKEN_LIFETIME"], 1, 90 * 86400),
        dev_issuer_extra_users=_check_users(raw["DEV_ISSUER_EXTRA_USERS"]),
    )
    if settings.api_validation == "introspection" and not settings.api_introspection_client_id:
        raise ConfigError(
            "API_INTROSPECTION_CLIENT_ID",
            "is empty but API_VALIDATION=introspection",
            "Set the client id (and API_INTROSPECTION_CLIENT_SECRET) the resource server uses at the introspection endpoint",
        )
    return settings


def _check_choice(name: str, value: str, choices: set[str]) -> str:
    value = value.strip().lower()
    if value not in choices:
        raise ConfigError(name, f"{value!r} is not one of {sorted(choices)}", f"Set {name} to one of {', '.join(sorted(choices))}")
    return value


def _check_scope(value: str) -> str:
    value = _check_text("SERVICE_SCOPE", value)
    # RFC 6749 §3.3: scope tokens are printable ASCII without space, '"' or '\'.
    if not all(re.fullmatch(r"[\x21\x23-\x5B\x5D-\x7E]+", token) for token in value.split()):
        raise ConfigError("SERVICE_SCOPE", f"{value!r} is not a valid scope list", "Use space-separated scope names such as customScope")
    if "openid" in value.split():
        raise ConfigError("SERVICE_SCOPE", "asks for openid", "A service has no user: ask only for custom scopes (e.g. customScope)")
    return value


def _check_private_key(value: str) -> str:
    if not value:
        return ""
    path = Path(value)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    if not path.is_file():
        raise ConfigError("SERVICE_PRIVATE_KEY", f"{value!r} is not a readable file", "Point it at a PEM or JWK file, e.g. one written by `python -m service_app keygen`")
    return str(path)


def _check_directory(name: str, value: str) -> str:
    """An optional directory path (``~`` expanded); it need not exist yet."""
    if not value:
        return ""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(name, f"{value!r} is not a directory", "Point it at a directory (it is created if missing), or leave it empty")
    return str(path.resolve())


def _check_users(value: str) -> tuple[tuple[str, str], ...]:
    """``user1@example.com:pass1,user2@example.com:pass2`` into pairs."""
    users = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        username, sep, password = item.partition(":")
        if not sep or not username or not password:
            raise ConfigError("DEV_ISSUER_EXTRA_USERS", f"{item!r} is not username:password", "Write user@example.com:password pairs separated by commas")
        users.append((username, password))
    return tuple(users)
