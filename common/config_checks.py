"""The checks a setting's value passes before any component uses it.

Each check takes ``(name, raw value, every raw value)`` and returns the
typed value, or raises :class:`ConfigError` whose message is one line
naming the variable and the fix.  :mod:`common.config` names one check
per variable in its table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

import click

from .redis_client import RedisUrlError, parse_redis_url

#: The project root: ``.env`` and ``instance/`` live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Where the development issuer lives unless ``ISSUER`` says otherwise.
DEV_ISSUER_DEFAULT = "http://localhost:9000/oauth2/default"

_PLACEHOLDER = re.compile(r"[{}<>]|\byour[A-Z_]|\.\.\.")


class ConfigError(ValueError, click.ClickException):
    """A setting is missing or malformed.

    ``str(error)`` is one line: the variable, what is wrong, how to fix it.
    It is also a :class:`click.ClickException`, so that when an app factory
    refuses its settings under the ``flask`` command line (``flask --app
    dev_issuer rotate-keys``), click prints that line (``Error: ...``, exit
    code 2) instead of a traceback.
    """

    exit_code = 2

    def __init__(self, variable: str, problem: str, fix: str):
        self.variable = variable
        click.ClickException.__init__(self, f"{variable}: {problem}. {fix}")

    def __str__(self) -> str:
        return self.message


# -- checks: each takes (name, raw value, every raw value) and returns the typed value ---------------------

#: The signature of a row's check.
Check = Callable[[str, str, Mapping[str, str]], object]


def _check_url(name: str, value: str, *, path_allowed: bool) -> str:
    value = value.strip()
    if _PLACEHOLDER.search(value):
        raise ConfigError(
            name,
            f"{value!r} still contains a placeholder",
            "Replace it with a real URL, e.g. https://dev-123456.okta.com/oauth2/default",
        )
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(
            name,
            f"{value!r} is not an http(s) URL",
            "Set it to an absolute URL such as http://localhost:5001",
        )
    if parts.query or parts.fragment:
        raise ConfigError(name, f"{value!r} has a query or fragment", "Remove everything from '?' or '#' on")
    try:
        parts.port  # noqa: B018 -- urllib checks the port only when it is read
    except ValueError:
        raise ConfigError(name, f"{value!r} has an invalid port", "Use a port between 1 and 65535") from None
    local = parts.hostname in {"localhost", "127.0.0.1", "::1"} or parts.hostname.endswith(".test")
    if parts.scheme == "http" and not local:
        # RFC 9700 §2.6 / RFC 6749 §3.1.2.1: tokens and codes only over TLS,
        # except on the loopback interface where nothing leaves the machine.
        raise ConfigError(
            name,
            f"{value!r} uses plain http for a non-local host",
            "Use https:// for anything that is not localhost",
        )
    if not path_allowed and parts.path not in {"", "/"}:
        raise ConfigError(name, f"{value!r} has a path", "Give only the origin, e.g. http://localhost:5001")
    return value if path_allowed else value.rstrip("/")


def url(*, path_allowed: bool = False) -> Check:
    """An http(s) URL; ``path_allowed=False``: an origin (base URL), trailing ``/`` removed."""
    return lambda name, value, raw: _check_url(name, value, path_allowed=path_allowed)


def _check_text(name: str, value: str, *, required: bool = True, secret: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise ConfigError(name, "is empty", f"Set {name} in the environment or in .env (see .env.example)")
    # A real secret or password may well contain "<", "{" or "...": only
    # ids and names are checked for copy-paste placeholders.
    if not secret and _PLACEHOLDER.search(value):
        raise ConfigError(
            name,
            f"{value!r} still contains a placeholder",
            f"Copy the real value from your issuer's console into {name}",
        )
    return value


def text(*, required: bool = True) -> Check:
    """An id or a name: stripped, never a copy-pasted placeholder."""
    return lambda name, value, raw: _check_text(name, value, required=required)


def secret(*, required: bool = True) -> Check:
    """A secret or a password: stripped, any characters allowed."""
    return lambda name, value, raw: _check_text(name, value, required=required, secret=True)


def number(low: float, high: float, kind: type = int) -> Check:
    """A whole number (``kind=int``) or a number of seconds (``kind=float``) from ``low`` to ``high``."""

    def check(name: str, value: str, raw: Mapping[str, str]):
        try:
            result = kind(value)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            fix = f"Set a number from {low} to {high}"
            raise ConfigError(name, f"{value!r} is not {what}", fix) from None
        if not low <= result <= high:
            raise ConfigError(name, f"{result} is out of range", f"Set a number from {low} to {high}")
        return result

    return check


def choice(*choices: str) -> Check:
    """One of ``choices`` (case-insensitive)."""

    def check(name: str, value: str, raw: Mapping[str, str]) -> str:
        value = value.strip().lower()
        if value not in choices:
            raise ConfigError(
                name,
                f"{value!r} is not one of {sorted(choices)}",
                f"Set {name} to one of {', '.join(sorted(choices))}",
            )
        return value

    return check


def _check_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(name, f"{value!r} is not a yes/no value", "Set true or false")


def is_dev_issuer(issuer: str) -> bool:
    """A local URL shaped like the bundled dev issuer's (``/oauth2/default``)."""
    parts = urlsplit(issuer)
    return parts.hostname in {"localhost", "127.0.0.1"} and parts.path == "/oauth2/default"


#: An issuer identifier as Okta's custom authorization servers spell it, for messages.
ISSUER_EXAMPLE = "https://dev-123456.okta.com/oauth2/default"


def issuer_warnings(issuer: str) -> list[str]:
    """What is probably wrong with a valid ``ISSUER``, one line each (``make check-config`` prints them).

    The issuer identifier is compared character for character with the
    discovery document's ``issuer`` (OpenID Connect Discovery 1.0 §4.3,
    RFC 8414 §3.3). Okta's has no trailing slash, so one copied with it makes
    every discovery fail. A bare origin with ``/`` is left alone: some
    issuers (Auth0) do spell theirs so.
    """
    path = urlsplit(issuer).path
    if path != "/" and path.endswith("/"):
        return [
            f"ISSUER {issuer!r} ends with '/': it must match the issuer's discovery document exactly, "
            f"which for Okta and most issuers has none, e.g. {ISSUER_EXAMPLE}"
        ]
    return []


def check_bind(name: str, value: str, raw: Mapping[str, str]) -> str:
    """A listen address, ``host:port`` (``[::1]:port`` for IPv6); empty means "from the base URL"."""
    value = value.strip()
    if not value:
        return ""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            name, f"{value!r} is not host:port", f"Set {name} like 127.0.0.1:8001, or leave it empty"
        )
    return value


def check_redis_url(name: str, value: str, raw: Mapping[str, str]) -> str:
    """A Redis URL in one of the forms :mod:`common.redis_client` connects to, or empty.

    ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://…/service_name[/db]``
    and ``redis+cluster://host:port[,host:port…]`` (README "Deploying").
    """
    value = value.strip()
    if not value:
        return value
    try:
        parse_redis_url(value)
    except RedisUrlError as error:
        # The value may hold the Redis password: never repeat credentials in an error.
        quoted = repr(value) if "@" not in value else "the value (not repeated: it holds credentials)"
        raise ConfigError(
            name,
            f"{quoted} is not a Redis URL: {error}",
            "Use redis://host:port/db, rediss:// (TLS), unix:///path.sock, "
            "redis+sentinel://host:port[,host:port...]/service_name[/db] or redis+cluster://host:port[,...] "
            '(README "Deploying"), or leave it unset for the embedded Redis',
        ) from None
    return value


def check_directory(name: str, value: str, raw: Mapping[str, str]) -> str:
    """An optional directory path (``~`` expanded); it need not exist yet."""
    value = value.strip()
    if not value:
        return ""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(
            name,
            f"{value!r} is not a directory",
            "Point it at a directory (it is created if missing), or leave it empty",
        )
    return str(path.resolve())


def check_trusted_mode(name: str, value: str, raw: Mapping[str, str]) -> bool:
    """``TRUSTED_MODE``: true, false, or auto (the default).

    The password grant is deprecated (RFC 9700 §2.4) and off unless enabled.
    ``auto`` enables it only against the bundled dev issuer, so that the
    trusted-app walkthrough runs after ``make run`` while a real issuer
    never sees a password unless someone asked for it explicitly.
    """
    if value.strip().lower() == "auto":
        return is_dev_issuer(raw["ISSUER"].strip())
    return _check_bool(name, value)


def check_service_secret(name: str, value: str, raw: Mapping[str, str]) -> str:
    # A key for private_key_jwt (RFC 7523 §2.2) replaces the secret.
    return _check_text(name, value, secret=True, required=not raw["SERVICE_PRIVATE_KEY"].strip())


def check_private_key(name: str, value: str, raw: Mapping[str, str]) -> str:
    value = value.strip()
    if not value:
        return ""
    path = Path(value)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    if not path.is_file():
        raise ConfigError(
            name,
            f"{value!r} is not a readable file",
            "Point it at a PEM or JWK file, e.g. one written by `python -m service_app keygen`",
        )
    return str(path)


def check_scope(name: str, value: str, raw: Mapping[str, str]) -> str:
    value = _check_text(name, value)
    # RFC 6749 §3.3: scope tokens are printable ASCII without space, '"' or '\'.
    if not all(re.fullmatch(r"[\x21\x23-\x5B\x5D-\x7E]+", token) for token in value.split()):
        raise ConfigError(
            name,
            f"{value!r} is not a valid scope list",
            "Use space-separated scope names such as customScope",
        )
    if "openid" in value.split():
        raise ConfigError(
            name, "asks for openid", "A service has no user: ask only for custom scopes (e.g. customScope)"
        )
    return value


def check_introspection_client(name: str, value: str, raw: Mapping[str, str]) -> str:
    value = _check_text(name, value, required=False)
    if not value and raw["API_VALIDATION"].strip().lower() == "introspection":
        # RFC 7662 §2.1: the introspection endpoint authenticates its caller.
        raise ConfigError(
            name,
            "is empty but API_VALIDATION=introspection",
            "Set the client id (and API_INTROSPECTION_CLIENT_SECRET) the resource server uses "
            "at the introspection endpoint",
        )
    return value


def check_users(name: str, value: str, raw: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``user1@example.com:pass1,user2@example.com:pass2`` into pairs."""
    users = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        username, sep, password = item.partition(":")
        if not sep or not username or not password:
            raise ConfigError(
                name,
                f"{item!r} is not username:password",
                "Write user@example.com:password pairs separated by commas",
            )
        users.append((username, password))
    return tuple(users)
