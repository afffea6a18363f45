"""7. The SPA's backend-for-frontend: ``/bff/api/messages`` against calling the API directly.

One dev issuer, one resource server and one SPA server (its BFF) under
gunicorn, one user signed in to the BFF over HTTP as a browser would
(``GET /bff/login``, the issuer's sign-in form, ``/bff/callback``).  Then
Debian's ``wrk`` with one connection (so the figure is latency, not
throughput) loads, in alternating rounds of equal length:

* ``GET {SPA_BASE_URL}/bff/api/messages`` with the BFF's session cookie and
  ``X-CSRF: 1``: the BFF checks the header, loads the session from Redis,
  and forwards the call with the user's access token;
* ``GET {API_URL}/api/messages`` with that same access token (read from the
  BFF's session in Redis) in ``Authorization: Bearer``, as the in-browser
  modes call the API.

The figure is the difference of the medians of the per-round p50
latencies: what the BFF hop adds to one API call.  The access token lives
an hour, so no round renews it: this is the steady state.
"""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlsplit

import redis
import requests

from common.session import load_stored_session
from common.tokens import TokenSet
from tests.issuer_helpers import sign_in_and_get_redirect
from tests.support import free_port, gunicorn

from .support import (
    ACCESS_LOG_FORMAT,
    BENCH_USER_AGENT,
    Result,
    Scale,
    Suite,
    median,
    parse_access_log,
    wrk_output,
)

GOAL_MS = 3.0
#: The BFF's session cookie over http (spa_app.BFF_COOKIE; ``__Host-`` only on https).
COOKIE = "spa_bff_session"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_latency(url: str, headers: dict[str, str], seconds: float) -> tuple[float, float, float]:
    """``(p50 ms, p99 ms, requests/s)`` of one ``wrk -c1 --latency`` round against ``url``."""
    out = wrk_output(url, seconds, 1, headers, latency=True)
    found = {}
    for percent in ("50", "99"):
        match = re.search(rf"^\s*{percent}(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            raise RuntimeError(f"cannot read wrk's latency distribution:\n{out}")
        found[percent] = float(match.group(1)) * _UNITS[match.group(2)]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return found["50"], found["99"], float(rps.group(1))


def bff_session(suite: Suite, spa_url: str) -> tuple[str, str]:
    """Sign the demo user in to the BFF; return ``(session cookie, access token)``."""
    settings = suite.settings
    http = requests.Session()
    http.headers["User-Agent"] = BENCH_USER_AGENT
    login = http.get(spa_url + "/bff/login", allow_redirects=False, timeout=30)
    if login.status_code != 302:
        raise RuntimeError(f"GET /bff/login answered {login.status_code}: {login.text[:500]}")
    callback = sign_in_and_get_redirect(
        http, login.headers["Location"], settings.demo_username, settings.demo_password
    )
    if urlsplit(callback).path != "/bff/callback":
        raise RuntimeError(f"the issuer redirected to {callback!r}, not to /bff/callback")
    landed = http.get(callback, allow_redirects=False, timeout=30)
    if landed.status_code != 302:
        raise RuntimeError(f"/bff/callback answered {landed.status_code}: {landed.text[:500]}")
    sid = http.cookies.get(COOKIE)
    store = redis.Redis.from_url(suite.env["REDIS_URL"])
    keys = [key for key in store.keys(f"*session:{sid}") if b":lock:" not in key]
    if len(keys) != 1:
        raise RuntimeError(f"expected one BFF session in Redis, found {len(keys)}")
    tokens = TokenSet.from_dict(load_stored_session(store.get(keys[0]))["tokens"])
    return sid, tokens.access_token


def worker_times(suite: Suite) -> tuple[float, float]:
    """Median ms inside the workers (gunicorn ``%(D)s``): the BFF's ``/bff/api/messages``, the API's route."""
    bff = [row["ms"] for row in parse_access_log(suite.log_path("spa")) if row["path"] == "/bff/api/messages"]
    api = [row["ms"] for row in parse_access_log(suite.log_path("api")) if row["path"] == "/api/messages"]
    return median(bff), median(api)


def run(scale: Scale) -> Result:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    rounds = scale.pick(10, 1)
    seconds = scale.pick(2, 1)
    spa_port = free_port()
    # Bearer tokens on both sides, so that the direct call can use the BFF's token
    # as it is: this figure is the proxy's cost; DPoP's own cost is figure 10.
    env = {"SPA_BASE_URL": f"http://127.0.0.1:{spa_port}", "DPOP": "off"}
    with Suite(components=("api",), env=env, access_logs=True) as suite:
        timed = ["--access-logfile", str(suite.log_path("spa")), "--access-logformat", ACCESS_LOG_FORMAT]
        spa = gunicorn(
            "bench-spa", "spa_app:create_app()", suite.env, spa_port, health_path="/healthz", extra=timed
        )
        spa.log_path = suite.tmp / "spa.log"
        spa.start()
        try:
            sid, access_token = bff_session(suite, spa.url)
            through_bff = (spa.url + "/bff/api/messages", {"Cookie": f"{COOKIE}={sid}", "X-CSRF": "1"})
            direct = (suite.url("api") + "/api/messages", {"Authorization": f"Bearer {access_token}"})
            # Warm-up: discovery and keys in every worker, connection pools, imports.
            for url, headers in (through_bff, direct):
                wrk_latency(url, headers, 1)
            pairs = [
                (wrk_latency(*direct, seconds=seconds), wrk_latency(*through_bff, seconds=seconds))
                for _ in range(rounds)
            ]
        finally:
            spa.stop()
        inside = worker_times(suite)
    direct_p50 = median([d[0] for d, _ in pairs])
    bff_p50 = median([b[0] for _, b in pairs])
    direct_p99 = median([d[1] for d, _ in pairs])
    bff_p99 = median([b[1] for _, b in pairs])
    added = bff_p50 - direct_p50
    return Result(
        key="bff",
        title="BFF proxy: /bff/api/messages vs the API directly, added p50",
        figure=f"+{added:.2f} ms",
        goal=f"<= {GOAL_MS:.0f} ms",
        met=added <= GOAL_MS,
        details=[
            f"direct  /api/messages:     p50 {direct_p50:.2f} ms, p99 {direct_p99:.2f} ms",
            f"via BFF /bff/api/messages: p50 {bff_p50:.2f} ms, p99 {bff_p99:.2f} ms",
            f"inside the workers (access logs, p50): the BFF's route {inside[0]:.2f} ms, the API "
            f"call within it included; the API's route {inside[1]:.2f} ms",
            *(
                f"round {i + 1}: direct p50 {d[0]:.2f} ms ({d[2]:,.0f} req/s), "
                f"BFF p50 {b[0]:.2f} ms ({b[2]:,.0f} req/s)"
                for i, (d, b) in enumerate(pairs)
            ),
        ],
        how=(
            f"wrk -t1 -c1 --latency, {rounds} alternating rounds of {seconds} s per route; one user signed "
            "in to the BFF over HTTP against the dev issuer, DPOP=off; the direct calls carry the same "
            "access token, read from the BFF's Redis session; gunicorn resource server and SPA server (2 "
            "workers x 4 threads each, as the Procfile); figure = median per-round p50 via the BFF minus "
            "median per-round p50 direct (p99s: medians of the per-round p99s)."
        ),
    )
