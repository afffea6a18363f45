"""``native_sim login`` with a pushed authorization request (RFC 9126): a public client, client_id only."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from common.config import load_settings
from tests.issuer_helpers import sign_in_and_get_redirect
from tests.native_sim.conftest import cli_env

pytestmark = pytest.mark.usefixtures("dev_issuer", "resource_server")


def test_login_pushes_and_the_browser_url_names_only_client_id_and_request_uri(
    suite_env, token_dir, start_login
):
    settings = load_settings(suite_env)
    run = start_login(cli_env(suite_env, token_dir, PAR="on"), "--explain")
    url = run.authorization_url()
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [settings.native_client_id] and set(query) == {"client_id", "request_uri"}

    callback = sign_in_and_get_redirect(
        requests.Session(), url, settings.demo_username, settings.demo_password
    )
    assert urlsplit(callback).hostname == "127.0.0.1" and "code=" in callback
    assert requests.get(callback, timeout=10).status_code == 200  # the one-shot loopback listener
    code, out, err = run.finish()
    assert code == 0, err
    assert f"Signed in as {settings.demo_username}" in out
    # --explain shows the push: the parameters went server to server, the PKCE verifier never.
    assert "Pushed authorization request (PAR)" in out and "code_challenge_method: S256" in out
    assert "request_uri" in out and "code_verifier: [redacted]" in out
