"""Token introspection (RFC 7662): asking the issuer whether a token is active."""

from __future__ import annotations

from .client import Client
from .errors import FlowError


def introspect(client: Client, token: str, token_type_hint: str | None = None) -> dict:
    """Ask the issuer whether a token is active (RFC 7662 §2), authenticated as ``client``.

    :param token: the token to check.
    :param token_type_hint: ``access_token`` or ``refresh_token`` (RFC 7662 §2.1).
    :return: the introspection response (RFC 7662 §2.2); ``{"active": False}``
        for any token the issuer does not vouch for.
    :raises FlowError: ``issuer_unreachable`` (or ``token_error`` when the
        issuer refuses our client authentication or answers nonsense).
    """
    params = {"token": token}
    if token_type_hint:
        params["token_type_hint"] = token_type_hint
    status, data = client.post_form(
        "introspection_endpoint", params, what="introspection endpoint", step="introspection"
    )
    with client.recorder.failures("introspection"):
        if status >= 400:
            raise FlowError(
                "token_error",
                f"The introspection endpoint refused our request (HTTP {status}).",
                "Check the introspection client's id and secret.",
                502,
            )
        if not isinstance(data.get("active"), bool):
            raise FlowError(
                "token_error", "The introspection answer has no boolean 'active' member.", "", 502
            )
    return data if data["active"] else {"active": False}
