"""No access log shows an authorization code, a ``state`` or a token from a URL.

Real processes, real log files: gunicorn started the way the Procfile and
``tests/support.py`` start it (``--config python:common.gunicorn_conf``) with
its access log on, and the Werkzeug development server of ``flask run``.
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

from common.log_redaction import REDACTED, redact
from tests.support import ROOT, VENV_BIN, Service, free_port, gunicorn

CODE = "SplxlOBeZQQYbYS6WxSbIA"
STATE = "af0ifjsldkj-state-value"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
SECRETS = (CODE, STATE, ID_TOKEN)

#: Requests whose URLs carry the secrets, as the issuer redirects and logout links do.
PATHS = (
    f"/login/callback?code={CODE}&state={STATE}&iss=http%3A%2F%2F127.0.0.1",
    f"/?id_token_hint={ID_TOKEN}&post_logout_redirect_uri=http%3A%2F%2Flocalhost%2F&state={STATE}",
    f"/?next=%2Fprofile%3Fcode%3D{CODE}",
)


def _wait_for_lines(log: Path, marker: str, count: int, timeout: float = 15.0) -> str:
    """The log's text once ``marker`` appears ``count`` times (a line is written after its answer)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if text.count(marker) >= count:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{count} lines with {marker!r} never appeared in {log}:\n{text[-2000:]}")


def _request_every_path(base_url: str) -> None:
    for path in PATHS:
        assert requests.get(base_url + path, allow_redirects=False, timeout=10).status_code < 500


def _assert_redacted(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)
    assert text.count(REDACTED) >= 5, text
    # What is not secret stays, so the log is still useful.
    # (Werkzeug logs the request line partly percent-decoded, gunicorn as sent.)
    assert f"/login/callback?code={REDACTED}&state={REDACTED}&iss=" in text
    assert "&post_logout_redirect_uri=" in text


def test_gunicorn_access_log_redacts_codes_state_and_tokens(suite_env, tmp_path):
    log = tmp_path / "access.log"
    service = gunicorn(
        "spa-log-redaction",
        "spa_app:create_app()",
        suite_env,
        free_port(),
        workers=1,
        health_path="/healthz",
        extra=["--access-logfile", str(log)],
    ).start()
    try:
        _request_every_path(service.url)
        text = _wait_for_lines(log, "?", len(PATHS))
    finally:
        service.stop()
    _assert_redacted(text)


def test_werkzeug_development_server_log_redacts_them_too(suite_env, tmp_path):
    """``flask --app ... run`` (README's "one component by hand"): its request log goes through the filter."""
    port = free_port()
    service = Service(
        "spa-flask-run",
        [str(VENV_BIN / "flask"), "--app", "spa_app", "run", "--port", str(port)],
        suite_env,
        port,
        health_path="/healthz",
        log_dir=tmp_path,
    ).start()
    try:
        _request_every_path(service.url)
        text = _wait_for_lines(service.log_path, '" 200', len(PATHS) + 1)
    finally:
        service.stop()
    _assert_redacted(text)


def test_redaction_keeps_other_parameters_and_similar_names():
    line = "GET /cb?codex=1&code=abc&iss=x&STATE=s&xstate=2 HTTP/1.1"
    assert redact(line) == f"GET /cb?codex=1&code={REDACTED}&iss=x&STATE={REDACTED}&xstate=2 HTTP/1.1"
    assert redact("code=abc&scope=openid") == f"code={REDACTED}&scope=openid"
    assert redact("http://a.test/cb#access_token=t&token_type=Bearer") == (
        f"http://a.test/cb#access_token={REDACTED}&token_type=Bearer"
    )


def test_every_gunicorn_the_suite_starts_uses_the_redacting_config():
    """The Procfile (``make run``) and docker-compose.yml start every gunicorn with the config module."""
    procfile = [line for line in ROOT.joinpath("Procfile").read_text().splitlines() if "gunicorn" in line]
    commands = [line for line in procfile if not line.startswith("#")]
    assert len(commands) == 5 and all("--config python:common.gunicorn_conf" in c for c in commands), commands
    # compose runs `sh -c "exec gunicorn ... --bind $$WEB_BIND ..."` (*_BIND from the environment).
    compose = [
        line
        for line in ROOT.joinpath("docker-compose.yml").read_text().splitlines()
        if "exec gunicorn" in line
    ]
    assert len(compose) == 5 and all("--config python:common.gunicorn_conf" in c for c in compose), compose
