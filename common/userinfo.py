"""The UserInfo endpoint (OpenID Connect Core 5.3): claims about the signed-in user."""

from __future__ import annotations

import requests

from .client import Client
from .dpop_client import proof_display, send_authorized
from .errors import FlowError
from .http import parse_json_response, send
from .jwks import InvalidToken, check_registered_claims, decode_jwt


def userinfo(client: Client, access_token: str, *, expected_sub: str) -> dict:
    """Claims about the user from the UserInfo endpoint (OIDC Core 5.3).

    5.3.2: the ``sub`` there must be exactly the ID token's ``sub``,
    otherwise the answer belongs to someone else and must not be used.

    :param access_token: the user's access token: a Bearer token (RFC 6750 §2.1), or, when the
        client holds the key it is bound to, with the DPoP scheme and a proof with ``ath``
        (RFC 9449 §7.1; a nonce asked for with ``401`` is sent in one retry, §9).
    :param expected_sub: the ID token's ``sub``.
    :return: the claims.
    :raises FlowError: ``token_error`` (401: token expired or revoked),
        ``invalid_userinfo`` (sub mismatch), ``issuer_unreachable``.
    """
    with client.recorder.failures("userinfo"):
        url = client.endpoint("userinfo_endpoint")
        headers, response = _get(client, url, access_token)
        if response.status_code in (401, 403):
            raise FlowError(
                "token_error",
                f"The UserInfo endpoint refused the access token (HTTP {response.status_code}).",
                "The access token may have expired or been revoked; sign in again.",
                401,
            )
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == "application/jwt" and response.status_code == 200:
            claims = _signed_claims(client, response.text.strip())
        else:
            claims = parse_json_response(response, "UserInfo endpoint")
        request = {"method": "GET", "url": url, "headers": headers}
        if "DPoP" in headers:
            request["proof"] = proof_display(headers["DPoP"], "GET", url, access_token)
        client.recorder.step(
            "userinfo", request=request, response={"status": response.status_code, "body": claims}
        )
        if claims.get("sub") != expected_sub:
            raise FlowError(
                "invalid_userinfo",
                "The UserInfo answer is about a different user (sub) than the ID token.",
                "Sign in again; the answer was not used.",
                502,
            )
    return claims


def _get(client: Client, url: str, access_token: str) -> tuple[dict, requests.Response]:
    """The UserInfo request (OIDC Core 5.3.1), with a DPoP proof when the client holds the token's key."""

    def request(method: str, target: str, **kwargs) -> requests.Response:
        return send(client.http, method, target, "UserInfo endpoint", **kwargs)

    attempts = send_authorized(
        request, "GET", url, access_token, client.dpop_key, headers={"Accept": "application/json"}
    )
    return attempts[-1]


def _signed_claims(client: Client, jwt: str) -> dict:
    """OIDC Core 5.3.2: a signed UserInfo response, verified like a token."""
    try:
        _, claims = decode_jwt(jwt, client.issuer.keyset, algorithms=client.issuer.id_token_algorithms())
        check_registered_claims(
            claims,
            issuer=client.issuer.identifier,
            audience=client.client_id,
            leeway=client.settings.clock_leeway,
            require=(),
        )
    except InvalidToken as exc:
        raise FlowError(
            "invalid_userinfo",
            f"The signed UserInfo response was rejected: {exc.reason}",
            "Sign in again.",
            502,
        ) from None
    return claims
