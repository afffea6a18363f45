"""Fixtures for the dev issuer's tests: clients, token checks with PyJWT, a second issuer.

Every token is checked with PyJWT against the JWKS the issuer publishes,
an implementation independent of the Authlib/joserfc code that signed it.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from common.config import load_settings
from tests.issuer_helpers import callback_params, pkce_pair, sign_in_and_get_redirect
from tests.support import free_port, gunicorn

TIMEOUT = 10


@dataclass
class Issuer:
    """A running dev issuer as a client sees it: metadata and settings."""

    url: str
    settings: object
    metadata: dict

    def endpoint(self, name: str) -> str:
        return f"{self.url}/v1/{name}"

    def jwks(self) -> dict:
        return requests.get(self.metadata["jwks_uri"], timeout=TIMEOUT).json()

    def verify(self, token: str, audience: str) -> dict:
        """Verify a JWT with PyJWT against the published JWKS (signature, iss, aud, exp)."""
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "RS256" and header.get("kid"), header
        key = jwt.PyJWKSet.from_dict(self.jwks())[header["kid"]].key
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=audience,
            issuer=self.url,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )

    def authorize_url(self, client_id: str, redirect_uri: str, **params) -> str:
        query = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid profile email offline_access",
            "state": "st-" + str(time.monotonic_ns()),
            "nonce": "n-" + str(time.monotonic_ns()),
        }
        query.update({k: v for k, v in params.items() if v is not None})
        return f"{self.endpoint('authorize')}?{urlencode(query)}"

    # -- whole flows, used by many tests ----------------------------------------

    def code_flow(
        self,
        client: str = "web",
        session: requests.Session | None = None,
        scope: str | None = None,
        redirect_uri: str | None = None,
    ) -> dict:
        """Authorization code + PKCE end to end; returns the token response plus what was sent."""
        s = self.settings
        session = session or requests.Session()
        client_id = {"web": s.web_client_id, "spa": s.spa_client_id, "native": s.native_client_id}[client]
        redirect_uri = (
            redirect_uri
            or {"web": s.web_redirect_uri, "spa": s.spa_redirect_uri, "native": s.native_redirect_uri()}[
                client
            ]
        )
        verifier, challenge = pkce_pair()
        url = self.authorize_url(
            client_id, redirect_uri, code_challenge=challenge, code_challenge_method="S256", scope=scope
        )
        location = sign_in_and_get_redirect(session, url, s.demo_username, s.demo_password)
        params = callback_params(location)
        assert "code" in params, params
        token = self.redeem(client, params["code"], redirect_uri, verifier)
        assert token.status_code == 200, token.text
        return {
            **token.json(),
            "_code": params["code"],
            "_verifier": verifier,
            "_redirect_uri": redirect_uri,
            "_nonce": parse_nonce(url),
            "_callback": params,
        }

    def redeem(self, client: str, code: str, redirect_uri: str, verifier: str | None) -> requests.Response:
        s = self.settings
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier:
            data["code_verifier"] = verifier
        if client == "web":
            return requests.post(
                self.endpoint("token"),
                data=data,
                auth=(s.web_client_id, s.web_client_secret),
                timeout=TIMEOUT,
            )
        data["client_id"] = {"spa": s.spa_client_id, "native": s.native_client_id}[client]
        return requests.post(self.endpoint("token"), data=data, timeout=TIMEOUT)

    def client_credentials(self, **data) -> requests.Response:
        s = self.settings
        return requests.post(
            self.endpoint("token"),
            data={"grant_type": "client_credentials", **data},
            auth=(s.service_client_id, s.service_client_secret),
            timeout=TIMEOUT,
        )

    def introspect(self, token: str, auth=None, client_id: str | None = None) -> dict:
        """Introspect as the web app (Basic), as ``auth``, or as public ``client_id``."""
        s = self.settings
        if client_id:
            response = requests.post(
                self.endpoint("introspect"), data={"token": token, "client_id": client_id}, timeout=TIMEOUT
            )
        else:
            response = requests.post(
                self.endpoint("introspect"),
                data={"token": token},
                auth=auth or (s.web_client_id, s.web_client_secret),
                timeout=TIMEOUT,
            )
        assert response.status_code == 200, response.text
        return response.json()


def parse_nonce(url: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query)["nonce"][0]


def half_hash(value: str) -> str:
    """``at_hash`` / ``c_hash`` for RS256 (OpenID Connect Core 3.1.3.6)."""
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _issuer(url: str, env: dict) -> Issuer:
    settings = load_settings(env)
    metadata = requests.get(f"{url}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    return Issuer(url, settings, metadata)


@pytest.fixture(scope="session")
def issuer(issuer_url, suite_env) -> Issuer:
    """The shared dev issuer (gunicorn, two workers, real Redis) from tests/conftest.py."""
    return _issuer(issuer_url, suite_env)


@pytest.fixture(scope="session")
def service_key_pem(tmp_path_factory):
    """A private key file for the service's private_key_jwt, as SERVICE_PRIVATE_KEY names it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("service-key") / "service.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


@pytest.fixture(scope="session")
def second_issuer(suite_env, redis_server, service_key_pem):
    """Another dev issuer with other settings: 2 s codes, private_key_jwt, no password grant.

    Its own Redis database keeps its codes, tokens and keys apart from the
    shared issuer's; its key rotations therefore disturb nobody else.
    """
    port = free_port()
    env = {
        **suite_env,
        "ISSUER": f"http://127.0.0.1:{port}/oauth2/default",
        "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/1",
        "DEV_ISSUER_CODE_LIFETIME": "2",
        "SERVICE_PRIVATE_KEY": str(service_key_pem),
        "TRUSTED_MODE": "false",
    }
    service = gunicorn(
        "dev_issuer_second",
        "dev_issuer:create_app()",
        env,
        port,
        workers=2,
        health_path="/oauth2/default/.well-known/openid-configuration",
    ).start()
    yield _issuer(env["ISSUER"], env)
    service.stop()
