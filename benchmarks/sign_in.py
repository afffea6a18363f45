"""3. Sign-in through dev issuer and web app, over HTTP; 4. session size in Redis.

One sign-in is what a browser does, without the browser (the same HTTP
steps as :mod:`tests.issuer_helpers`): ``GET /login`` on the web app, the
authorization request at the issuer, its sign-in form (``POST /signin``,
where the issuer checks the password's scrypt hash), the redirect back to
``/authorization-code/callback``, where the web app redeems the code (the
issuer signs an ID token and an access token) and validates the ID token.
Each sign-in starts with no cookies, as a new visitor.

Phases, after an untimed warm-up:

* **sequential** (one client): per sign-in, the web app's own time is read
  from the workers' access logs (gunicorn ``%(D)s``, microseconds inside the
  worker): ``GET /login`` plus the callback, minus the time the issuer spent
  on the calls the web app made to it meanwhile (the token request), so what
  remains is web_app + common code, Redis and loopback I/O.  The password
  hash and the RSA signatures are timed in process with the very functions
  the dev issuer calls, and the issuer's ``POST /signin`` and token endpoint
  are read from its access log.
* **concurrent** (several clients): sign-ins per second and end-to-end
  latency percentiles, bounded in count and in time.

Session size (figure 4): Redis ``MEMORY USAGE`` of the web app's session key
(the cookie's value behind the app's key prefix) after each sequential
sign-in: tokens, the flow inspector's log, everything the session holds.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis
import requests

from common.session import load_stored_session
from tests.issuer_helpers import sign_in_and_get_redirect

from .support import BENCH_USER_AGENT, Result, Scale, Suite, median, parse_access_log, percentile

OWN_GOAL_MS = 8.0
SESSION_GOAL_BYTES = 4096
USERS = [(f"bench{i}@example.test", f"Dev-Only-Bench-Pass-{i}") for i in range(8)]
CALLBACK_PATH = "/authorization-code/callback"


def one_sign_in(web_url: str, username: str, password: str) -> tuple[float, requests.Session]:
    """Sign in as a new visitor; return the seconds it took and the client (with its cookies)."""
    http = requests.Session()
    http.headers["User-Agent"] = BENCH_USER_AGENT
    started = time.perf_counter()
    login = http.get(web_url + "/login", allow_redirects=False, timeout=30)
    if login.status_code != 302:
        raise RuntimeError(f"GET /login answered {login.status_code}")
    callback = sign_in_and_get_redirect(http, login.headers["Location"], username, password)
    if urlsplit(callback).path != CALLBACK_PATH:
        raise RuntimeError(f"the issuer redirected to {callback!r}, not to the callback")
    landed = http.get(callback, allow_redirects=False, timeout=30)
    elapsed = time.perf_counter() - started
    if landed.status_code != 302:
        raise RuntimeError(f"the callback answered {landed.status_code}: {landed.text[:500]}")
    return elapsed, http


def hashing_ms(rounds: int) -> float:
    """Median ms of one password check, with the dev issuer's own hash method (werkzeug scrypt)."""
    from werkzeug.security import check_password_hash, generate_password_hash

    stored = generate_password_hash("Dev-Only-Bench-Pass", method="scrypt")
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        check_password_hash(stored, "Dev-Only-Bench-Pass")
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def signing_ms(rounds: int) -> float:
    """Median ms of one RS256 JWT signature, the way the dev issuer signs (joserfc, RSA 2048)."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, private=True)
    header = {"alg": "RS256", "kid": "bench", "typ": "JWT"}
    claims = {
        "iss": "http://127.0.0.1/oauth2/default",
        "sub": "00u-bench",
        "aud": "api://default",
        "iat": int(time.time()),
        "exp": int(time.time()) + 3600,
        "scp": ["openid", "profile"],
    }
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        jwt.encode(header, claims, key, algorithms=["RS256"])
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def session_bytes(store: redis.Redis, client: requests.Session) -> tuple[int, dict[str, int]]:
    """Redis ``MEMORY USAGE`` of the web app's session behind this client's cookie.

    :return: the bytes, and the JSON size of each top-level session entry (what takes the room).
    """
    sid = client.cookies.get("web_app_session")
    if not sid:
        raise RuntimeError("no web_app_session cookie after the sign-in")
    keys = [key for key in store.scan_iter(match=f"*session:{sid}", count=1000)]
    if len(keys) != 1:
        raise RuntimeError(f"expected one Redis key for the session, found {len(keys)}")
    parts = {}
    try:
        # JSON size of each entry before compression (what takes the room).
        stored = load_stored_session(store.get(keys[0]))
        parts = {name: len(json.dumps(value)) for name, value in stored.items()}
    except (TypeError, ValueError):
        pass  # not JSON: only the total is reported
    return int(store.memory_usage(keys[0], samples=0)), parts


def own_times(web_rows: list[dict], issuer_rows: list[dict]) -> dict[str, list[float]]:
    """Per sequential sign-in: the web app's own ms, and the issuer's /signin and token ms.

    The web app's time is its two requests (``/login`` and the callback,
    from the harness); nested inside the callback is the token request it
    makes to the issuer (any other user agent than the harness's), whose
    time inside the issuer is subtracted.  The issuer's log is cut into one
    segment per harness ``POST /signin``: a sign-in's token request comes
    after its own form post and before the next one.
    """
    logins = [r["ms"] for r in web_rows if r["agent"] == BENCH_USER_AGENT and r["path"] == "/login"]
    callbacks = [r["ms"] for r in web_rows if r["agent"] == BENCH_USER_AGENT and r["path"] == CALLBACK_PATH]
    segments: list[dict] = []
    for row in issuer_rows:
        if row["agent"] == BENCH_USER_AGENT and row["method"] == "POST" and row["path"] == "/signin":
            segments.append({"signin": row["ms"], "app_calls": 0.0, "token": 0.0})
        elif row["agent"] != BENCH_USER_AGENT and segments:
            segments[-1]["app_calls"] += row["ms"]
            if row["path"].endswith("/v1/token"):
                segments[-1]["token"] += row["ms"]
    count = min(len(logins), len(callbacks), len(segments))
    return {
        "own": [logins[i] + callbacks[i] - segments[i]["app_calls"] for i in range(count)],
        "login": logins[:count],
        "callback": callbacks[:count],
        "signin": [s["signin"] for s in segments[:count]],
        "token": [s["token"] for s in segments[:count]],
    }


@dataclass(frozen=True)
class Load:
    """How many sign-ins each phase makes, at the full scale or in the smoke run."""

    warm_up: int
    sequential: int
    clients: int
    concurrent_seconds: int
    concurrent_max: int

    @classmethod
    def for_scale(cls, scale: Scale) -> "Load":
        """The phases' sizes for this scale."""
        return cls(
            warm_up=scale.pick(8, 2),
            sequential=scale.pick(30, 3),
            clients=scale.pick(4, 2),
            concurrent_seconds=scale.pick(15, 2),
            concurrent_max=scale.pick(400, 10),
        )


@dataclass
class SequentialPhase:
    """One client's sign-ins: end-to-end ms, session sizes, and the own times from the access logs."""

    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    #: The JSON size of each entry of the last sign-in's session.
    entries: dict[str, int] = field(default_factory=dict)
    #: :func:`own_times` of these sign-ins.
    parts: dict[str, list[float]] = field(default_factory=dict)


def sequential_sign_ins(suite: Suite, store: redis.Redis, count: int) -> SequentialPhase:
    """Sign in ``count`` times, one after the other, measuring each one's session and the apps' own time."""
    web_url = suite.url("web")
    web_before = len(parse_access_log(suite.log_path("web")))
    issuer_before = len(parse_access_log(suite.log_path("issuer")))
    phase = SequentialPhase()
    for i in range(count):
        elapsed, client = one_sign_in(web_url, *USERS[i % len(USERS)])
        phase.latencies.append(elapsed * 1000)
        size, phase.entries = session_bytes(store, client)
        phase.sizes.append(size)
    time.sleep(0.2)  # the last access-log lines
    phase.parts = own_times(
        parse_access_log(suite.log_path("web"))[web_before:],
        parse_access_log(suite.log_path("issuer"))[issuer_before:],
    )
    if not phase.parts["own"]:
        raise RuntimeError("no sign-in found in the access logs")
    return phase


def concurrent_sign_ins(web_url: str, load: Load) -> tuple[list[float], float]:
    """Sign in from ``load.clients`` clients at once, bounded in count and in time.

    :return: the end-to-end ms of each sign-in, and the wall-clock seconds of the phase.
    """
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + load.concurrent_seconds

    def client_loop(number: int) -> None:
        done = 0
        while time.monotonic() < deadline:
            with lock:
                if len(latencies) >= load.concurrent_max:
                    return
            try:
                elapsed, _ = one_sign_in(web_url, *USERS[(number + done * load.clients) % len(USERS)])
            except Exception as error:  # counted and reported, never hidden
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                return
            done += 1
            with lock:
                latencies.append(elapsed * 1000)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(load.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(load.concurrent_seconds + 60)
    wall = time.monotonic() - started
    if failures:
        raise RuntimeError(f"{len(failures)} sign-in(s) failed under load, e.g. {failures[0]}")
    return latencies, wall


def sign_in_result(
    load: Load,
    sequential: SequentialPhase,
    latencies: list[float],
    wall: float,
    hash_ms: float,
    sign_ms: float,
) -> Result:
    """Figure 3: the apps' own time per sign-in, with the end-to-end latencies and the crypto costs."""
    parts = sequential.parts
    own_p50 = median(parts["own"])
    per_second = len(latencies) / wall
    return Result(
        key="sign-in",
        title="Sign-in (HTTP, dev issuer + web app): apps' own ms p50",
        figure=f"{own_p50:.1f} ms own; {per_second:.1f}/s",
        goal=f"own <= {OWN_GOAL_MS:.0f} ms p50",
        met=own_p50 <= OWN_GOAL_MS,
        details=[
            f"end to end, 1 client:  p50 {median(sequential.latencies):.0f} ms, "
            f"p95 {percentile(sequential.latencies, 95):.0f} ms ({load.sequential} sign-ins)",
            f"end to end, {load.clients} clients: p50 {median(latencies):.0f} ms, "
            f"p95 {percentile(latencies, 95):.0f} ms, "
            f"{per_second:.1f} sign-ins/s sustained ({len(latencies)} sign-ins in {wall:.1f} s)",
            f"password hash (scrypt, in process):   {hash_ms:.1f} ms per check; issuer POST /signin p50 "
            f"{median(parts['signin']):.1f} ms",
            f"RSA signing (RS256, 2048, in process): {sign_ms:.2f} ms per JWT x 2 (ID + access token); "
            f"issuer token endpoint p50 {median(parts['token']):.1f} ms",
            f"web_app + common own time: p50 {own_p50:.1f} ms, p95 {percentile(parts['own'], 95):.1f} ms "
            f"(/login p50 {median(parts['login']):.1f} ms, callback p50 {median(parts['callback']):.1f} ms "
            "incl. the token request)",
        ],
        how=(
            f"{load.sequential} sequential then {load.clients} concurrent clients "
            f"(<= {load.concurrent_seconds} s, <= {load.concurrent_max} sign-ins), each sign-in a new "
            "visitor doing GET /login, the issuer's form, the callback, over HTTP to gunicorn "
            "(2 workers x 4 threads each); own time = web app's /login + callback from its access log "
            "(%(D)s) minus the issuer's time on the web app's token request; hash and signing timed "
            "in process with the issuer's own functions."
        ),
    )


def session_result(sequential: SequentialPhase) -> Result:
    """Figure 4: the median Redis size of a signed-in user's session, and what takes the room."""
    sizes = sequential.sizes
    size = int(statistics.median(sizes))
    largest = sorted(sequential.entries.items(), key=lambda e: -e[1])[:4]
    return Result(
        key="session",
        title="Session size in Redis per signed-in user",
        figure=f"{size:,} bytes",
        goal=f"<= {SESSION_GOAL_BYTES // 1024} KiB",
        met=size <= SESSION_GOAL_BYTES,
        details=[
            f"min {min(sizes):,}, median {size:,}, max {max(sizes):,} bytes over {len(sizes)} sign-ins",
            "largest session entries (JSON bytes): "
            + ", ".join(f"{name} {length:,}" for name, length in largest),
        ],
        how=(
            "Redis MEMORY USAGE (SAMPLES 0) of the web app's session key right after each sequential sign-in."
        ),
    )


def run(scale: Scale) -> tuple[Result, Result]:
    """Figures 3 and 4: warm up, sign in sequentially then concurrently, and time the crypto in process."""
    load = Load.for_scale(scale)
    env = {"DEV_ISSUER_EXTRA_USERS": ",".join(f"{u}:{p}" for u, p in USERS)}
    with Suite(components=("api", "web"), env=env, workers=2, access_logs=True) as suite:
        web_url = suite.url("web")
        store = redis.Redis.from_url(suite.env["REDIS_URL"])
        # Warm-up: every worker imports, discovers the issuer, fetches its keys.
        for i in range(load.warm_up):
            one_sign_in(web_url, *USERS[i % len(USERS)])
        sequential = sequential_sign_ins(suite, store, load.sequential)
        latencies, wall = concurrent_sign_ins(web_url, load)
        store.close()

    hash_ms = hashing_ms(scale.pick(7, 2))
    sign_ms = signing_ms(scale.pick(30, 3))
    return sign_in_result(load, sequential, latencies, wall, hash_ms, sign_ms), session_result(sequential)
