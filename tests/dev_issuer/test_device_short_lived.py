"""Device codes that expire, and the per-address limit on wrong codes, on a private dev issuer.

A dev issuer of its own (own Redis, ``DEV_ISSUER_DEVICE_CODE_LIFETIME=3``),
so that codes expire within the test and the wrong codes typed here from
127.0.0.1 do not count against the other tests' browser visits.
"""

from __future__ import annotations

import time

import pytest
import requests

from common.config import load_settings
from tests.device_helpers import DeviceRun, base_of, device_authorize, enter_code, poll, text_of
from tests.native_sim.conftest import cli_env
from tests.support import RedisServer, free_port, gunicorn

LIFETIME = 3


@pytest.fixture(scope="module")
def short_lived(suite_env, tmp_path_factory):
    """A dev issuer whose device codes live ``LIFETIME`` seconds: its environment."""
    redis = RedisServer(tmp_path_factory.mktemp("device-redis")).start()
    port = free_port()
    env = {
        **suite_env,
        "ISSUER": f"http://127.0.0.1:{port}/oauth2/default",
        "REDIS_URL": redis.url,
        "DEV_ISSUER_DEVICE_CODE_LIFETIME": str(LIFETIME),
    }
    issuer = gunicorn("dev_issuer-device-short", "dev_issuer:create_app()", env, port, health_path="/healthz")
    try:
        issuer.start()
        yield env
    finally:
        issuer.stop()
        redis.stop()


def test_an_expired_device_code_answers_expired_token_and_its_user_code_is_gone(short_lived):
    issuer, client_id = short_lived["ISSUER"], load_settings(short_lived).native_client_id
    data = device_authorize(issuer, client_id).json()
    assert data["expires_in"] == LIFETIME
    deadline = time.monotonic() + 30
    while poll(issuer, client_id, data["device_code"]).json()["error"] != "expired_token":
        assert time.monotonic() < deadline, "the device code never expired"
        time.sleep(5)
    wrong = enter_code(requests.Session(), base_of(issuer), data["user_code"])
    assert wrong.status_code == 400 and "not valid" in text_of(wrong.text, "activate-error")


def test_device_login_ends_with_exit_4_when_the_code_expires(short_lived, tmp_path):
    run = DeviceRun(cli_env(short_lived, tmp_path / "tokens"), "--no-qr")
    try:
        code, out, err = run.finish(timeout=60)
    finally:
        run.stop()
    assert code == 4, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("native_sim: expired_token:"), err
    assert "Traceback" not in err
    assert not (tmp_path / "tokens").exists() or not any((tmp_path / "tokens").iterdir())


def test_wrong_codes_from_one_address_are_limited_across_browser_sessions(short_lived):
    base = base_of(short_lived["ISSUER"])
    # A browser that drops its cookie after each try is still one address: 20 wrong codes
    # (the expiry test above typed one already), then no more.
    answers = [enter_code(requests.Session(), base, "BBBB-BBBB").status_code for _ in range(20)]
    assert answers[:19] == [400] * 19 and answers[-1] in (400, 429), answers
    data = device_authorize(short_lived["ISSUER"], load_settings(short_lived).native_client_id).json()
    limited = enter_code(requests.Session(), base, data["user_code"])
    assert limited.status_code == 429, limited.text[:500]
    assert "too_many_attempts" in limited.text
