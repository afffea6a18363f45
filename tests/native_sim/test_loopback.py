"""The one-shot loopback listener (RFC 8252 §7.3), on its own: no issuer needed."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from native_sim.loopback import LOOPBACK_HOST, LoginTimeout, LoopbackListener

STATE = "expected-state-value"


@pytest.fixture
def listener():
    refused = []
    with LoopbackListener(0, on_refused=refused.append) as listener:
        listener.refused = refused
        listener.start(STATE)
        yield listener


def callback_url(listener, query: str) -> str:
    return f"http://{LOOPBACK_HOST}:{listener.port}/callback?{query}"


def test_binds_the_loopback_literal_on_a_free_port(listener):
    assert listener.host == "127.0.0.1"
    assert listener.port > 0
    assert listener._server.socket.getsockname() == ("127.0.0.1", listener.port)


def test_accepts_the_response_with_the_matching_state(listener):
    response = requests.get(callback_url(listener, f"code=abc&state={STATE}&iss=x"), timeout=5)
    assert response.status_code == 200
    assert 'id="close-window"' in response.text
    assert "You can close this window" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert listener.wait(1) == {"code": "abc", "state": STATE, "iss": "x"}


def test_a_forged_state_is_refused_and_the_listener_keeps_waiting(listener):
    forged = requests.get(callback_url(listener, "code=evil&state=forged"), timeout=5)
    assert forged.status_code == 400
    assert 'id="error"' in forged.text and "does not match" in forged.text
    missing = requests.get(callback_url(listener, "code=evil"), timeout=5)
    assert missing.status_code == 400
    with pytest.raises(LoginTimeout):
        listener.wait(0.2)
    assert len(listener.refused) == 2

    real = requests.get(callback_url(listener, f"code=real&state={STATE}"), timeout=5)
    assert real.status_code == 200
    assert listener.wait(1)["code"] == "real"


def test_only_one_response_is_accepted(listener):
    assert requests.get(callback_url(listener, f"code=first&state={STATE}"), timeout=5).status_code == 200
    again = requests.get(callback_url(listener, f"code=second&state={STATE}"), timeout=5)
    assert again.status_code == 409
    assert listener.wait(1)["code"] == "first"


def test_an_issuer_error_is_accepted_and_shown_escaped(listener):
    response = requests.get(
        callback_url(listener, f"error=%3Cscript%3Ealert(1)%3C/script%3E&state={STATE}"), timeout=5
    )
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text
    assert 'id="close-window"' not in response.text
    assert listener.wait(1)["error"] == "<script>alert(1)</script>"


@pytest.mark.parametrize("state", ["", "&state=forged"])
def test_an_error_without_our_state_is_ignored_like_any_forged_response(listener, state):
    """RFC 6749 §10.12: an unsolicited error is not the issuer's.

    Its text is not shown, and we keep waiting.
    """
    spoof = "Call%20support%20at%20%2B1%20555%200100%20and%20give%20your%20password"
    response = requests.get(
        callback_url(listener, f"error=account_locked&error_description={spoof}{state}"), timeout=5
    )
    assert response.status_code == 400
    assert "Call support" not in response.text and "account_locked" not in response.text
    assert listener.refused
    with pytest.raises(LoginTimeout):
        listener.wait(0.2)
    # The real answer is still accepted afterwards.
    assert requests.get(callback_url(listener, f"code=abc&state={STATE}"), timeout=5).status_code == 200
    assert listener.wait(1)["code"] == "abc"


@pytest.mark.parametrize("query", [f"code=a&code=b&state={STATE}", f"code=a&state={STATE}&state={STATE}"])
def test_repeated_parameters_are_refused(listener, query):
    # RFC 6749 §3.1: parameters must not be included more than once.
    assert requests.get(callback_url(listener, query), timeout=5).status_code == 400
    with pytest.raises(LoginTimeout):
        listener.wait(0.1)


def test_other_paths_methods_and_hosts_are_refused(listener):
    base = f"http://{LOOPBACK_HOST}:{listener.port}"
    assert requests.get(f"{base}/favicon.ico", timeout=5).status_code == 404
    assert requests.post(callback_url(listener, f"code=a&state={STATE}"), timeout=5).status_code == 405
    # DNS rebinding: a page whose host name points at 127.0.0.1 sends its own Host.
    rebound = requests.get(
        callback_url(listener, f"code=a&state={STATE}"),
        headers={"Host": f"evil.test:{listener.port}"},
        timeout=5,
    )
    assert rebound.status_code == 400
    with pytest.raises(LoginTimeout):
        listener.wait(0.1)
    # ... and none of that used up the one real response.
    assert requests.get(callback_url(listener, f"code=a&state={STATE}"), timeout=5).status_code == 200


def test_a_stalled_connection_does_not_block_the_real_response(listener):
    # Another local process connects and sends nothing; each connection has its own thread.
    stalled = socket.create_connection((LOOPBACK_HOST, listener.port), timeout=5)
    try:
        assert requests.get(callback_url(listener, f"code=a&state={STATE}"), timeout=5).status_code == 200
        assert listener.wait(1)["code"] == "a"
    finally:
        stalled.close()


def test_timeout_and_close():
    listener = LoopbackListener(0)
    listener.start(STATE)
    with pytest.raises(LoginTimeout, match="within 0.2 seconds"):
        listener.wait(0.2)
    port = listener.port
    listener.close()
    listener.close()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK_HOST, port), timeout=2).close()


def test_close_without_start_does_not_hang():
    listener = LoopbackListener(0)
    done = threading.Event()
    threading.Thread(target=lambda: (listener.close(), done.set()), daemon=True).start()
    assert done.wait(5)


def test_a_taken_port_raises_oserror():
    with LoopbackListener(0) as first:
        with pytest.raises(OSError):
            LoopbackListener(first.port)
