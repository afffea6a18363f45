"""8. DPoP at the API: time per request with a DPoP-bound token and a proof, against a Bearer token.

In process, through the whole resource-server app (Flask's test client:
routing, the token check, the JSON answer, the after-request hooks), with
a real ``redis-server`` for the used ``jti`` values and the issuer's keys
fetched over real loopback HTTPS (the same key server as figure 2):

* **Bearer**: ``Authorization: Bearer <token>``, the same token every time;
* **DPoP**: ``Authorization: DPoP <token>`` with a DPoP-bound token (``cnf.jkt``),
  the same token every time, and a fresh proof per request (made before the
  clock starts: the client's cost is not the API's).

Same token reuse on both sides, so the token's signature is checked once
and then answered from the validator's cache; what the DPoP side adds is
the proof: parse, ES256 signature, the claims, and one Redis ``SET NX`` for
its ``jti`` (RFC 9449 §4.3, §11.1).  Requests go in chunks, Bearer and DPoP
alternating, so that load from elsewhere on the machine falls on both; the
figure is the ratio of the medians over chunks of the mean wall-clock time
per request (wall clock, because the Redis round trip is part of the cost).

Then the storage: the number of ``dpop_jti`` keys after N DPoP requests
(one per proof), their TTL (2 x ``CLOCK_LEEWAY``: never longer than a proof
could be accepted), and, with the narrowest window, how long until every
record of a burst is gone (full run only: it waits for them).
"""

from __future__ import annotations

import json
import os
import time

import redis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from common.dpop import MIN_PROOF_WINDOW

from .support import Result, Scale, median
from .token_validation import AUDIENCE, KeyServer, b64url

GOAL = 1.5
PUBLIC_URL = "https://api.bench.test"
PATH = "/api/messages"
JTI_PATTERN = "resource_server:dpop_jti:*"


def mint(keys: KeyServer, cnf: dict | None = None) -> str:
    """An Okta-shaped access token from the key server's key, bound to a key when ``cnf`` is given."""
    now = int(time.time())
    header = {"kid": keys.kid, "alg": "RS256"}
    claims = {
        "ver": 1,
        "iss": keys.issuer,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "cid": "0oa-bench-client",
        "scp": ["openid", "profile"],
        "sub": "bench.user@example.test",
        **({"cnf": cnf} if cnf else {}),
    }
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = keys.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def api(keys: KeyServer, redis_url: str, leeway: int):
    """The resource server app, in process, trusting ``keys``."""
    from resource_server import create_app

    app = create_app(
        {
            "ISSUER": keys.issuer,
            "API_AUDIENCE": AUDIENCE,
            "API_URL": PUBLIC_URL,
            "REDIS_URL": redis_url,
            "CLOCK_LEEWAY": str(leeway),
        }
    )
    return app.test_client()


class InMemoryJti:
    """A jti record in this process's memory: only to split the cost, never what the API uses."""

    def __init__(self):
        self.seen: set[tuple[str, str]] = set()

    def first_use(self, jkt: str, jti: str, window: int) -> bool:
        if (jkt, jti) in self.seen:
            return False
        self.seen.add((jkt, jti))
        return True


def _time_requests(client, bearer: str, bound: str, key, scale: Scale) -> dict[str, list[float]]:
    """Microseconds per request per chunk (CPU and wall clock) of each side, in rotating order.

    Sides: ``bearer``; ``dpop`` (the API as it runs: the jti record in
    Redis); ``proof only`` (the same, with the jti record in memory: the
    split between checking the proof and recording its jti, for the details).
    """
    chunks, size = scale.pick(40, 4), scale.pick(50, 10)
    bearer_headers = {"Authorization": f"Bearer {bearer}"}
    url = PUBLIC_URL + PATH
    checker = client.application.extensions["dpop_checker"]
    in_redis, in_memory = checker.replay, InMemoryJti()

    def dpop_headers(count: int) -> list[dict]:
        return [
            {"Authorization": f"DPoP {bound}", "DPoP": key.proof("GET", url, access_token=bound)}
            for _ in range(count)
        ]

    for headers in [bearer_headers] * 20 + dpop_headers(20):  # warm-up: keys, imports, caches
        assert client.get(PATH, headers=headers).status_code == 200
    sides = ["bearer", "dpop", "proof only"]
    timings: dict[str, list[float]] = {f"{side} {clock}": [] for side in sides for clock in ("cpu", "wall")}
    for number in range(chunks):
        for side in sides[number % 3 :] + sides[: number % 3]:
            requests = [bearer_headers] * size if side == "bearer" else dpop_headers(size)  # before the clock
            checker.replay = in_memory if side == "proof only" else in_redis
            cpu, wall = time.thread_time(), time.perf_counter()
            for headers in requests:
                response = client.get(PATH, headers=headers)
            timings[f"{side} cpu"].append((time.thread_time() - cpu) / size * 1e6)
            timings[f"{side} wall"].append((time.perf_counter() - wall) / size * 1e6)
            if response.status_code != 200:
                raise RuntimeError(f"{side} request refused: {response.get_data(as_text=True)[:300]}")
    checker.replay = in_redis
    return timings


def _storage(keys: KeyServer, redis_url: str, key, scale: Scale) -> list[str]:
    """How long used-jti records live: a burst in the narrowest window, then (full run) until they go."""
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    client = api(keys, redis_url, leeway=0)  # the window is then MIN_PROOF_WINDOW
    bound = mint(keys, {"jkt": key.thumbprint})
    burst = scale.pick(200, 20)
    for _ in range(burst):
        proof = key.proof("GET", PUBLIC_URL + PATH, access_token=bound)
        client.get(PATH, headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
    names = list(store.scan_iter(JTI_PATTERN, count=1000))
    ttl = max(store.ttl(name) for name in names)
    line = (
        f"CLOCK_LEEWAY=0 ({MIN_PROOF_WINDOW} s window): {burst} DPoP requests -> {len(names)} jti records, "
    )
    line += f"TTL <= {ttl} s"
    if scale.quick:
        return [line]
    started = time.monotonic()
    # EXISTS expires a key whose time is up, so the count is exact (no waiting for Redis's sweeper).
    while store.exists(*names) and time.monotonic() - started < 2 * MIN_PROOF_WINDOW + 5:
        time.sleep(0.2)
    return [f"{line}; {store.exists(*names)} left {time.monotonic() - started:.1f} s later"]


def run(scale: Scale) -> Result:
    from common.dpop import DPoPKey
    from tests.support import RedisServer

    keys = KeyServer().start()
    store_dir = keys.tmp / "redis"
    redis_server = RedisServer(store_dir).start()
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = keys.ca_file  # the API fetches the keys over HTTPS with requests
    try:
        key = DPoPKey.generate()
        client = api(keys, redis_server.url, leeway=60)
        bearer, bound = mint(keys), mint(keys, {"jkt": key.thumbprint})
        timings = _time_requests(client, bearer, bound, key, scale)
        store = redis.Redis.from_url(redis_server.url)
        names = list(store.scan_iter(JTI_PATTERN, count=1000))
        ttl = max(store.ttl(name) for name in names)
        memory = sum(store.memory_usage(name) or 0 for name in names[:100]) / min(len(names), 100)
        storage = _storage(keys, redis_server.url, key, scale)
    finally:
        if saved is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = saved
        redis_server.stop()
        keys.stop()
    us = {name: median(values) for name, values in timings.items()}
    ratio = us["dpop cpu"] / us["bearer cpu"]
    chunks = len(timings["dpop cpu"])
    return Result(
        key="dpop",
        title="DPoP at the API: CPU time per request, DPoP vs Bearer",
        figure=f"{ratio:.2f}x ({us['dpop cpu']:.0f} us vs {us['bearer cpu']:.0f} us)",
        goal=f"<= {GOAL:.1f}x",
        met=ratio <= GOAL,
        details=[
            f"CPU:  Bearer {us['bearer cpu']:6.0f} us/request, DPoP {us['dpop cpu']:6.0f} us/request; of the "
            f"{us['dpop cpu'] - us['bearer cpu']:.0f} us DPoP adds, checking the proof is "
            f"{us['proof only cpu'] - us['bearer cpu']:.0f} us and recording its jti in Redis "
            f"{us['dpop cpu'] - us['proof only cpu']:.0f} us",
            f"wall: Bearer {us['bearer wall']:6.0f} us/request, DPoP {us['dpop wall']:6.0f} us/request "
            f"({us['dpop wall'] / us['bearer wall']:.2f}x; includes the Redis round trip, and on a busy "
            "machine the waits for a CPU)",
            f"CLOCK_LEEWAY=60: {len(names)} jti records after the DPoP requests (one per proof), "
            f"TTL <= {ttl} s (2 x CLOCK_LEEWAY), about {memory:.0f} bytes each in Redis",
            *storage,
        ],
        how=(
            "in process (Flask test client through the whole resource server), a real redis-server for "
            "the jti records, keys over loopback HTTPS; the same token on every request on both sides; "
            f"a fresh ES256 proof per DPoP request, made before timing; {chunks} chunks per side, "
            "alternating; this thread's CPU time (and wall clock), median over chunks of the mean "
            "per request."
        ),
    )
