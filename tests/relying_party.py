"""Test helpers that run the relying party's protocol steps in the order the apps run them."""

from __future__ import annotations

from common.authorization import check_authorization_response
from common.client import Client
from common.id_token import validate_id_token
from common.inspector import FlowLog
from common.recorder import FlowRecorder
from common.tokens import TokenSet, exchange_code


def narrating(client: Client, log: FlowLog | None) -> Client:
    """``client``, recording its steps in ``log``."""
    return client.with_recorder(FlowRecorder(log))


def complete_sign_in(client: Client, params, pending, *, log: FlowLog | None = None) -> TokenSet:
    """The callback's steps in the order web_app/auth.py runs them: check, exchange, validate."""
    client = narrating(client, log)
    code = check_authorization_response(client, params, pending)
    tokens = exchange_code(client, code, pending)
    if tokens.id_token:
        tokens.id_claims = validate_id_token(
            client, tokens.id_token, nonce=pending.get("nonce"), access_token=tokens.access_token
        )
    return tokens


def error_of(excinfo) -> str:
    """The error code of the :class:`common.errors.FlowError` that ``pytest.raises`` caught."""
    return excinfo.value.error
