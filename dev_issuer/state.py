"""What every request of the issuer needs, attached to its Flask app.

``create_app`` builds one :class:`IssuerState` and one authorization server
per app and keeps them in ``app.extensions`` (see :func:`dev_issuer.server.config_oauth`);
the grants, endpoints and views reach them through :func:`state` and
:func:`authorization_server`.  Nothing is kept at module level, so two
issuer apps in one process (a test building a second one) stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from common.config import Settings

if TYPE_CHECKING:
    from authlib.integrations.flask_oauth2 import AuthorizationServer

    from .clients import Client
    from .keys import Keyring
    from .storage import Store
    from .users import User

#: The ``app.extensions`` keys this package uses.
STATE_EXTENSION = "dev_issuer"
SERVER_EXTENSION = "dev_issuer.authorization_server"


@dataclass
class IssuerState:
    """Settings, client registry, users, storage and signing keys of one issuer app."""

    settings: Settings
    clients: dict[str, Client]
    users: dict[str, User]
    store: Store
    keyring: Keyring

    def endpoint(self, name: str) -> str:
        """The URL of one of the issuer's endpoints, at Okta's ``{issuer}/v1/{name}``."""
        return f"{self.settings.issuer}/v1/{name}"


def state() -> IssuerState:
    """The current app's issuer state."""
    return current_app.extensions[STATE_EXTENSION]


def authorization_server() -> AuthorizationServer:
    """The current app's authorization server (RFC 6749 §3), with its grants and endpoints."""
    return current_app.extensions[SERVER_EXTENSION]
