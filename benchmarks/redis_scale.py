"""8-10. Cost as the work grows: Redis memory per signed-in user, a signed-in page among
100k other sessions, and the API's requests per second with one and two workers.

**Memory per signed-in user.**  One real sign-in through the web app and
the dev issuer gives one real stored session (the zlib-compressed JSON that
:mod:`common.session_store` writes: three tokens, a few claims, the flow
inspector's steps).  That record is written again under fresh random
session ids, with the store's own key names and the same command the store
uses for a new session (``SET key value EX lifetime NX``), up to 1k, 10k and
100k sessions; the figure is Redis's ``INFO memory`` ``used_memory`` grown
since before the first copy, divided by the number of sessions.  It should
stay flat: a session costs its value, its key and Redis's per-key overhead,
whatever the number of others.

**A signed-in page among 100k sessions.**  ``GET /profile`` with the real
session's cookie, one connection (``wrk -c1 --latency``), from two identical
web apps (gunicorn, 2 workers x 4 threads, as the Procfile): one on a Redis
database that holds only this session, one on a database that holds it and
the 100k copies.  Alternating rounds, so that load from elsewhere on the
machine falls on both alike.  Redis finds a key in a hash table, so the two
should match.

**The API with one and two workers.**  ``/api/messages`` of the resource
server with a real client-credentials token, ``wrk -t1 -c8``, with gunicorn
at ``--workers 1`` and then ``--workers 2`` (4 threads each); the median of
a few rounds.  On a machine with two cores the second worker can at most
double the first one's figure.
"""

from __future__ import annotations

import secrets

import redis
import requests

from common.redis_client import connect_redis
from common.session_store import SESSION_ID_BYTES, RedisSessionStore
from tests.issuer_helpers import sign_in_and_get_redirect
from tests.support import Service, free_port, gunicorn

from .bff_overhead import wrk_latency
from .support import BENCH_USER_AGENT, Result, Scale, Suite, median, wrk

COOKIE = "web_app_session"
PREFIX = "web_app:session:"
#: Sessions written per pipeline round trip while filling Redis.
BATCH = 1000
#: Bytes per session beyond the stored value that count as "flat": the key and Redis's bookkeeping.
FLAT_TOLERANCE = 0.10


def signed_in(suite: Suite) -> tuple[requests.Session, str]:
    """A real sign-in at the web app; the client and its session id."""
    settings = suite.settings
    http = requests.Session()
    http.headers["User-Agent"] = BENCH_USER_AGENT
    web = suite.url("web")
    login = http.get(web + "/login", allow_redirects=False, timeout=30)
    if login.status_code != 302:
        raise RuntimeError(f"GET /login answered {login.status_code}")
    callback = sign_in_and_get_redirect(
        http, login.headers["Location"], settings.demo_username, settings.demo_password
    )
    http.get(callback, timeout=30).raise_for_status()
    sid = http.cookies.get(COOKIE)
    if not sid or http.get(web + "/profile", allow_redirects=False, timeout=30).status_code != 200:
        raise RuntimeError("the sign-in did not leave a signed-in session")
    return http, sid


def fill(store: redis.Redis, record: bytes, ttl: int, count: int) -> None:
    """Write ``record`` under ``count`` fresh session ids, as the session store writes a new session."""
    names = RedisSessionStore(store, PREFIX)
    for start in range(0, count, BATCH):
        pipe = store.pipeline(transaction=False)
        for _ in range(min(BATCH, count - start)):
            pipe.set(names.store_id(secrets.token_urlsafe(SESSION_ID_BYTES)), record, ex=ttl, nx=True)
        pipe.execute()


def used_memory(store: redis.Redis) -> int:
    return int(store.info("memory")["used_memory"])


def page_latency(url: str, sid: str, seconds: float) -> tuple[float, float]:
    """p50 and p99 (ms) of the signed-in ``/profile`` at ``url``; checks that it is the signed-in page."""
    cookie = {"Cookie": f"{COOKIE}={sid}"}
    p50, p99, _ = wrk_latency(url + "/profile", cookie, seconds)
    # wrk counts a redirect as a success: the session must still be signed in.
    if requests.get(url + "/profile", headers=cookie, allow_redirects=False, timeout=30).status_code != 200:
        raise RuntimeError(f"{url}/profile did not answer 200 for the signed-in session")
    return p50, p99


def crowded_web_app(suite: Suite, redis_url: str) -> Service:
    """A second web app like the suite's, on its own port and Redis database."""
    port = free_port()
    env = {**suite.env, "REDIS_URL": redis_url, "WEB_BASE_URL": f"http://127.0.0.1:{port}"}
    service = gunicorn(
        "bench-web-crowded", "web_app:create_app()", env, port, workers=2, health_path="/healthz"
    )
    service.log_path = suite.tmp / "web-crowded.log"
    return service.start()


def alternating_latency(urls: list[str], sid: str, rounds: int, seconds: float) -> list[tuple[float, float]]:
    """Median p50 and p99 per URL, measured in alternating rounds (load from elsewhere falls on all alike)."""
    for url in urls:
        page_latency(url, sid, 1)  # warm-up
    samples = {url: [] for url in urls}
    for _ in range(rounds):
        for url in urls:
            samples[url].append(page_latency(url, sid, seconds))
    return [(median([a for a, _ in samples[u]]), median([b for _, b in samples[u]])) for u in urls]


def memory_result(per_session: list[tuple[int, float]], record_bytes: int, key_usage: int) -> Result:
    """Row 8 from the bytes per session at each level."""
    values = [v for _, v in per_session]
    flat = max(values) <= min(values) * (1 + FLAT_TOLERANCE)
    return Result(
        key="redis-memory",
        title="Redis memory per signed-in user",
        figure=" / ".join(f"{v:,.0f} B" for v in values)
        + " at "
        + " / ".join(f"{n:,}" for n, _ in per_session),
        goal=f"flat (within {FLAT_TOLERANCE:.0%})",
        met=flat,
        details=[
            f"{n:,} sessions: {v:,.0f} bytes each ({v * n / 2**20:,.1f} MiB in all)" for n, v in per_session
        ]
        + [
            f"one session's value: {record_bytes:,} bytes stored, MEMORY USAGE of its key {key_usage:,} bytes"
        ],
        how=(
            "one real sign-in (web app + dev issuer); its stored session (zlib-compressed JSON) "
            "written again under fresh random ids with the store's key names and command "
            "(SET key value EX NX, pipelined); INFO memory used_memory grown since the first copy, "
            "divided by the number of sessions."
        ),
    )


def sessions_figures(scale: Scale) -> tuple[Result, Result]:
    """Rows 8 and 9: memory per session at each level; the page without and among the others."""
    levels = scale.pick((1_000, 10_000, 100_000), (200, 1_000))
    rounds, seconds = scale.pick(5, 1), scale.pick(2, 1)
    with Suite(components=("web",), workers=2) as suite:
        _, sid = signed_in(suite)
        # Database 1 gets the same session and the crowd; the suite's web app keeps database 0 alone.
        crowd_url = suite.env["REDIS_URL"].rsplit("/", 1)[0] + "/1"
        store, crowd = connect_redis(suite.env["REDIS_URL"]), connect_redis(crowd_url)
        record, ttl = store.get(PREFIX + sid), suite.settings.session_lifetime
        crowd.set(PREFIX + sid, record, ex=ttl)
        baseline, written, per_session = used_memory(crowd), 0, []
        for level in levels:
            fill(crowd, record, ttl, level - written)
            written = level
            per_session.append((level, (used_memory(crowd) - baseline) / level))
        crowded = crowded_web_app(suite, crowd_url)
        try:
            alone, among = alternating_latency([suite.url("web"), crowded.url], sid, rounds, seconds)
        finally:
            crowded.stop()
        key_usage = int(store.memory_usage(PREFIX + sid, samples=0))
    memory = memory_result(per_session, len(record), key_usage)
    page = Result(
        key="redis-page",
        title=f"Signed-in /profile with {levels[-1]:,} other sessions",
        figure=f"p50 {among[0]:.1f} ms, p99 {among[1]:.1f} ms",
        goal="as with none stored",
        met=None,
        details=[
            f"with {levels[-1]:,} others: p50 {among[0]:.1f} ms, p99 {among[1]:.1f} ms",
            f"with no other session: p50 {alone[0]:.1f} ms, p99 {alone[1]:.1f} ms",
        ],
        how=(
            "two identical web apps (gunicorn, 2 workers x 4 threads), one on a Redis database holding "
            f"only this session, one on a database holding it and {levels[-1]:,} others; wrk -t1 -c1 "
            f"--latency against GET /profile with the session cookie, {rounds} alternating rounds of "
            f"{seconds} s each, medians; checked to answer 200 (the signed-in page) after every round."
        ),
    )
    return memory, page


def api_figure(scale: Scale) -> Result:
    """Row 10: /api/messages requests per second with one and with two gunicorn workers."""
    rounds, seconds, connections = scale.pick(3, 1), scale.pick(3, 1), 8
    rates = {}
    for workers in (1, 2):
        with Suite(components=("api",), workers=workers) as suite:
            url = suite.url("api") + "/api/messages"
            auth = {"Authorization": f"Bearer {suite.service_token()}"}
            wrk(url, 1, connections, auth)  # warm-up: discovery, JWKS, caches
            rates[workers] = median([wrk(url, seconds, connections, auth) for _ in range(rounds)])
    return Result(
        key="api-workers",
        title="API requests/s, 1 and 2 workers",
        figure=f"{rates[1]:,.0f} / {rates[2]:,.0f} req/s",
        goal="-",
        met=None,
        details=[f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x"],
        how=(
            f"wrk -t1 -c{connections}, median of {rounds} round(s) of {seconds} s against "
            "/api/messages with a real client-credentials token; resource server under gunicorn "
            "--workers 1, then 2 (4 threads each)."
        ),
    )


def run(scale: Scale) -> tuple[Result, Result, Result]:
    memory, page = sessions_figures(scale)
    return memory, page, api_figure(scale)
