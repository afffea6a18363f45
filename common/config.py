"""Settings for every part of the suite: one row per variable, loaded per component.

One table, :data:`VARIABLES`, says for each environment variable its
default, how it is checked, which components read it, and what it means.
:func:`load_settings` reads the environment (and a ``.env`` file if
present) and validates only the rows of the component that asks, so a
broken ``SERVICE_PRIVATE_KEY`` stops the service app and nothing else.
The dev issuer's component lists the client variables of every app,
because it registers those clients: one ``.env`` configures both sides of
every flow (README, "Configuration").

Precedence, lowest first: the development defaults in the table,
``.env``, the process environment, then the ``test_config`` mapping an app
factory receives.  A missing or malformed value raises
:class:`ConfigError`, whose message is one line that names the variable
and says how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .config_checks import DEV_ISSUER_DEFAULT, PROJECT_ROOT, ConfigError, check_redis_url, is_dev_issuer
from .running_suite import instance_dir, read_suite
from .variables import _BY_NAME, COMPONENTS, DEFAULTS, VARIABLES, Variable, variables_of

__all__ = [
    "COMPONENTS",
    "DEFAULTS",
    "DEV_ISSUER_DEFAULT",
    "PROJECT_ROOT",
    "VARIABLES",
    "ConfigError",
    "Settings",
    "Variable",
    "load_settings",
    "origin_of",
    "read_environment",
    "variables_of",
]

# -- the settings object ----------------------------------------------------------------------------------


class _Value:
    """The attribute of one variable: its value, or a loud failure if the component did not declare it."""

    def __init__(self, variable: Variable):
        self.variable = variable

    def __get__(self, settings: Settings | None, owner: type):
        if settings is None:
            return self
        try:
            return settings._values[self.variable.name]
        except KeyError:
            raise AttributeError(
                f"{self.variable.name} is not among {settings.component}'s settings: "
                f"add {settings.component} to that variable's row in common/config.py",
                name=self.variable.attribute,
                obj=settings,
            ) from None

    def __set__(self, settings: Settings, value) -> None:
        raise AttributeError(f"settings are read-only ({self.variable.name})")


class Settings:
    """The typed, validated settings of one component.

    Each variable of :data:`VARIABLES` is an attribute named after it
    (``settings.web_client_id`` for ``WEB_CLIENT_ID``).  Reading a variable
    the component did not declare raises :class:`AttributeError` naming it,
    rather than quietly handing out a default nobody validated.

    :ivar component: the component they were loaded for (``None``: every variable).
    """

    __slots__ = ("component", "_values")

    def __init__(self, component: str | None, values: Mapping[str, object]):
        object.__setattr__(self, "component", component)
        object.__setattr__(self, "_values", dict(values))

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"settings are read-only ({name})")

    def __eq__(self, other) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return (self.component, self._values) == (other.component, other._values)

    def __reduce__(self):
        # copy and pickle go through __init__, since attributes cannot be set.
        return (Settings, (self.component, self._values))

    def __hash__(self) -> int:
        return hash((self.component, tuple(self._values.items())))

    def __repr__(self) -> str:
        shown = {
            name: "***" if _BY_NAME[name].secret and value else value for name, value in self._values.items()
        }
        return f"Settings(component={self.component!r}, {shown!r})"

    def declares(self, name: str) -> bool:
        """Whether this component loaded the variable ``name`` (``"SECRET_KEY"``)."""
        return name in self._values

    # -- derived values: the fixed redirect paths of the README's "Configuration" ---------------------------

    @property
    def uses_dev_issuer(self) -> bool:
        """True when ``ISSUER`` is a local URL shaped like the dev issuer's."""
        return is_dev_issuer(self.issuer)

    @property
    def issuer_base_url(self) -> str:
        """The dev issuer's origin: ``ISSUER`` without ``/oauth2/default``."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def web_redirect_uri(self) -> str:
        """The web app's sign-in redirect URI (RFC 6749 §3.1.2)."""
        return f"{self.web_base_url}/authorization-code/callback"

    @property
    def web_post_logout_redirect_uri(self) -> str:
        """Where the issuer sends the browser after sign-out (OpenID Connect RP-Initiated Logout §2)."""
        return f"{self.web_base_url}/"

    @property
    def spa_redirect_uri(self) -> str:
        """The SPA's sign-in redirect URI."""
        return f"{self.spa_base_url}/login/callback"

    @property
    def spa_post_logout_redirect_uri(self) -> str:
        """The SPA's post-logout redirect URI."""
        return f"{self.spa_base_url}/"

    @property
    def spa_bff_redirect_uri(self) -> str:
        """The SPA's backend-for-frontend redirect URI (a confidential client's, RFC 6749 §3.1.2)."""
        return f"{self.spa_base_url}/bff/callback"

    @property
    def spa_origin(self) -> str:
        """The SPA's origin (RFC 6454): the one origin that may call the API and the issuer from a browser."""
        return origin_of(self.spa_base_url)

    def native_redirect_uri(self, port: int | None = None) -> str:
        """The loopback redirect URI of RFC 8252 §7.3 (IP literal, not ``localhost``)."""
        return f"http://127.0.0.1:{self.native_redirect_port if port is None else port}/callback"

    def as_environ(self) -> dict[str, str]:
        """The loaded settings as environment variables, for child processes."""
        return {name: _as_text(value) for name, value in self._values.items()}


for _variable in VARIABLES:
    setattr(Settings, _variable.attribute, _Value(_variable))
del _variable


def _as_text(value: object) -> str:
    """A typed value back as the text the environment would hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):  # DEV_ISSUER_EXTRA_USERS
        return ",".join(f"{user}:{password}" for user, password in value)
    return str(value)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL (RFC 6454), lower-cased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


# -- loading ----------------------------------------------------------------------------------------------


def read_environment(env_file: Path | None = None) -> dict[str, str]:
    """Defaults, overlaid with ``.env``, overlaid with the process environment (raw text, unchecked)."""
    values = dict(DEFAULTS)
    env_file = PROJECT_ROOT / ".env" if env_file is None else env_file
    if env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if k in DEFAULTS and v is not None})
    values.update({k: v for k, v in os.environ.items() if k in DEFAULTS})
    return values


def load_settings(overrides: Mapping[str, object] | None = None, *, component: str | None = None) -> Settings:
    """Read and validate the settings ``component`` uses.

    :param overrides: values that win over everything else (an app
        factory's ``test_config``); keys not in the table are ignored.
    :param component: one of :data:`COMPONENTS` (``"web_app"`` ...): only
        the variables it reads are loaded and checked.  ``None`` loads and
        checks every variable.
    :return: the validated :class:`Settings`.
    :raises ConfigError: naming the first bad variable, in table order.
    """
    rows = variables_of(component)
    raw = read_environment()
    for key, value in (overrides or {}).items():
        if key in DEFAULTS:
            raw[key] = "" if value is None else str(value)
    values = {row.name: row.check(row.name, raw[row.name], raw) for row in rows}
    if component != "launcher" and values.get("REDIS_URL") == "":
        # A process started by hand (`flask --app dev_issuer rotate-keys`) uses
        # the Redis of the suite `make run` is running, if any (README, "Running
        # one part by hand"). The launcher itself never does: it starts its own.
        suite = read_suite(instance_dir(raw["INSTANCE_DIR"]))
        if suite and isinstance(suite.get("redis_url"), str):
            values["REDIS_URL"] = check_redis_url("REDIS_URL", suite["redis_url"], raw)
    return Settings(component, values)
