"""The dev issuer's users: seeded from settings, passwords kept only as scrypt hashes.

The demo user (``DEMO_USERNAME``) and ``DEV_ISSUER_EXTRA_USERS`` are made
at start-up, the same in every worker; their profile claims are derived
from the login name and released by scope (OpenID Connect Core 5.4).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from functools import cache

from authlib.oidc import core as oidc
from werkzeug.security import check_password_hash, generate_password_hash

from common.config import Settings


@dataclass(frozen=True)
class User:
    """A seeded user; only the password's scrypt hash is kept."""

    username: str
    password_hash: str
    uid: str
    given_name: str
    family_name: str

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def email(self) -> str:
        return self.username if "@" in self.username else f"{self.username}@example.com"

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


@cache
def unknown_user_hash() -> str:
    """A scrypt hash no password matches, made like the users' own (same method and cost)."""
    return generate_password_hash(secrets.token_urlsafe(32), method="scrypt")


def authenticate(users: dict[str, User], username: str, password: str) -> User | None:
    """The user whose login and password these are, or ``None``; the same scrypt work either way.

    An unknown login is checked against :func:`unknown_user_hash`, so that it
    takes as long as a wrong password: otherwise the answer's timing tells
    who has an account, and guessing passwords gets easier (RFC 6749
    §10.10; §4.3.2 asks the password grant's endpoint to resist brute
    force).
    """
    user = users.get(username.lower())
    if user is None:
        check_password_hash(unknown_user_hash(), password)
        return None
    return user if user.check_password(password) else None


def make_user(username: str, password: str) -> User:
    """A user whose profile claims are derived from the login name."""
    local = username.split("@", 1)[0]
    parts = [p for p in re.split(r"[._+\-]", local) if p] or [local]
    given = parts[0].capitalize()
    family = " ".join(p.capitalize() for p in parts[1:]) or "Example"
    # Okta user ids look like 00u...: stable per login, opaque to clients.
    uid = "00u" + hashlib.sha256(username.lower().encode()).hexdigest()[:17]
    return User(username, generate_password_hash(password, method="scrypt"), uid, given, family)


def seed_users(settings: Settings) -> dict[str, User]:
    """The demo user and ``DEV_ISSUER_EXTRA_USERS``, keyed by lower-cased login."""
    pairs = ((settings.demo_username, settings.demo_password),) + settings.dev_issuer_extra_users
    return {username.lower(): make_user(username, password) for username, password in pairs}


def user_info(user: User, scope: str) -> oidc.UserInfo:
    """The standard claims a scope releases (OpenID Connect Core 5.4)."""
    info = oidc.UserInfo(
        sub=user.uid,
        name=user.name,
        given_name=user.given_name,
        family_name=user.family_name,
        preferred_username=user.username,
        locale="en-US",
        zoneinfo="America/Los_Angeles",
        email=user.email,
        email_verified=True,
    )
    return info.filter(scope)
