"""5. Service token reuse: API calls per token request, 32 threads, one token lifetime.

The service app's :class:`~service_app.client.ServiceClient` (one per
process, shared by 32 threads) calls the resource server's scoped route
``/api/custom`` as fast as it can for the usable lifetime of one access
token.  Token requests are counted *at the issuer side*, by the counting
reverse proxy the service app's tests put in front of the real dev issuer
(:class:`tests.service_app.conftest.CountingProxy`): the proxy is the
issuer's address for everybody, and it counts every ``POST`` to the token
endpoint before forwarding it.  The goal is that every call rides on one
token: the cache is single-flight, so 32 threads that start at once cause
one token request, not 32.

The issuer's access tokens are made short-lived for this figure, and the
threads stop just before the cache would renew the token (it renews at 90%
of the lifetime), so "over the token's lifetime" fits in seconds.
"""

from __future__ import annotations

import threading
import time

from service_app.client import ServiceClient
from tests.service_app.conftest import CountingProxy
from tests.support import free_port

from .support import Result, Scale, Suite

THREADS = 32


def call_until_renewal(
    client: ServiceClient, max_calls_per_thread: int, join_seconds: float
) -> tuple[int, dict[int, int], float]:
    """Let THREADS threads call the API together until the cached token nears its renewal point.

    :return: the number of calls, the count of each HTTP status, and the wall-clock seconds.
    """
    calls = 0
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)
    cache = client.cache

    def usable() -> bool:
        """Still inside the first token's usable lifetime (before the cache's renewal point)?"""
        cached = cache.peek()
        return cached is None or cache.clock() < cached.refresh_at() - 0.1

    def worker() -> None:
        nonlocal calls
        barrier.wait()  # all 32 start together: the stampede case
        for _ in range(max_calls_per_thread):
            if not usable():
                return
            result = client.call_api()
            with lock:
                calls += 1
                statuses[result.status] = statuses.get(result.status, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(join_seconds)
    return calls, statuses, time.monotonic() - started


def measure(lifetime: int, max_calls_per_thread: int) -> tuple[int, dict[int, int], float, int]:
    """Run the API and the dev issuer behind the counting proxy, and the threads against them.

    :return: calls, the count of each HTTP status, wall-clock seconds, and token requests seen by the issuer.
    """
    # The proxy must know the issuer's port before the issuer starts, and
    # the issuer must call itself by the proxy's address (its ISSUER).
    issuer_port = free_port()
    proxy = CountingProxy(issuer_port).start()
    try:
        suite = Suite(
            components=("api",),
            workers=2,
            env={
                "ISSUER": f"{proxy.url}/oauth2/default",
                "DEV_ISSUER_ACCESS_TOKEN_LIFETIME": str(lifetime),
            },
        )
        suite.ports["issuer"] = issuer_port
        with suite:
            suite.env["ISSUER"] = f"{proxy.url}/oauth2/default"
            client = ServiceClient(suite.settings)
            proxy.reset()
            calls, statuses, wall = call_until_renewal(client, max_calls_per_thread, lifetime + 60)
            token_requests = proxy.token_requests
    finally:
        proxy.stop()
    return calls, statuses, wall, token_requests


def run(scale: Scale) -> Result:
    """Figure 5: API calls per token request over one token's usable lifetime."""
    lifetime = scale.pick(10, 2)
    calls, statuses, wall, token_requests = measure(lifetime, scale.pick(5000, 200))
    if set(statuses) != {200}:
        raise RuntimeError(f"the API answered {statuses}")
    per_token = calls / max(token_requests, 1)
    return Result(
        key="service",
        title=f"Service token reuse: API calls per token request ({THREADS} threads)",
        figure=f"{calls:,} calls / {token_requests} token request(s)",
        goal="all calls on one token",
        met=token_requests == 1 and calls > 0,
        details=[
            f"{per_token:,.0f} calls per token request; {calls / wall:,.0f} calls/s over {wall:.1f} s; "
            f"token lifetime {lifetime} s"
        ],
        how=(
            f"{THREADS} threads share one ServiceClient (in-memory single-flight cache) and call "
            f"/api/custom until 0.1 s before the cache's renewal point of a {lifetime} s token "
            "(90% of its lifetime); token requests counted at the issuer side by a counting reverse "
            "proxy in front of the real dev issuer."
        ),
    )
