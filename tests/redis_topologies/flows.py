"""What a user does on a suite running on some Redis topology, over real HTTP.

The web app is signed in to as a browser would (``tests/web_app/conftest.py``
helpers); its stored session is read through :func:`common.redis_client.connect_redis`,
so the same lines read it from a Sentinel master or a Cluster.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import requests

from common.redis_client import connect_redis
from common.session import load_stored_session
from common.tokens import TokenSet
from tests.web_app.conftest import demo_user, element_text, form_csrf, sign_in

COOKIE = "web_app_session"


def signed_in(suite) -> tuple[requests.Session, requests.Response]:
    """A browser-like session signed in to the suite's web app, and its profile page."""
    http = requests.Session()
    username, password = demo_user(suite.env)
    page = sign_in(http, suite.web_base_url, username, password)
    assert page.status_code == 200 and urlsplit(page.url).path == "/profile", page.text[:2000]
    assert username in element_text(page.text, "claims")
    return http, page


def session_key(http: requests.Session) -> str:
    return f"web_app:session:{http.cookies.get(COOKIE)}"


def stored_tokens(suite, http: requests.Session) -> TokenSet:
    """The tokens the web app keeps for this browser, read from the topology's Redis."""
    raw = connect_redis(suite.env["REDIS_URL"]).get(session_key(http))
    assert raw is not None, "no server-side session for this cookie"
    return TokenSet.from_dict(load_stored_session(raw)["tokens"])


def call_api(suite, http: requests.Session, page: requests.Response) -> requests.Response:
    """``POST /call-api`` from ``page``'s form; assert the API answered 200 with messages."""
    answer = http.post(
        suite.web_base_url + "/call-api", data={"csrf_token": form_csrf(page.text)}, timeout=30
    )
    assert answer.status_code == 200, answer.text[:2000]
    assert element_text(answer.text, "api-status") == "HTTP 200", answer.text[:2000]
    assert json.loads(element_text(answer.text, "api-result"))["messages"]
    return answer


def sign_out(suite, http: requests.Session, page: requests.Response) -> None:
    """``POST /logout``; assert the issuer's logout redirect and that the session is gone from Redis."""
    key = session_key(http)
    response = http.post(
        suite.web_base_url + "/logout", data={"csrf_token": form_csrf(page.text)}, allow_redirects=False
    )
    assert response.status_code == 302 and "/logout" in response.headers["Location"], response.text[:2000]
    assert not connect_redis(suite.env["REDIS_URL"]).exists(key)


def wait_until_expired(tokens: TokenSet) -> None:
    """Let an access token expire (the suites here issue two-second tokens)."""
    time.sleep(max(0.0, tokens.expires_at - time.time()) + 1.1)


#: What a cluster client or server says when one command's keys are in several hash slots.
CROSS_SLOT_MARKERS = ("CROSSSLOT", "must map to the same key slot")


def cross_slot_lines(*texts: str) -> list[str]:
    """Every log line that reports a multi-key command across hash slots."""
    return [
        line for text in texts for line in text.splitlines() if any(m in line for m in CROSS_SLOT_MARKERS)
    ]
