"""1. Resource server overhead: the token-protected route against the health route.

One gunicorn resource server, one load generator (Debian's ``wrk``), one
run: ``/healthz`` (no token, no validation) and ``/api/messages`` (a real
client-credentials token from the dev issuer in the ``Authorization``
header) are loaded in alternating rounds of equal length, and the figure is
the median of the per-round ratios of requests per second.  Both routes go
through the same Flask app, the same after-request hooks and the same JSON
encoding, so the ratio is what checking a bearer token costs.

A client sends the same token on every call until it expires, so this is
the steady state: the first request verifies the signature, later ones hit
the validator's short cache of verified tokens (keyed by the token's hash,
never past ``exp``); :mod:`.token_validation` measures the uncached check.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from .support import Result, Scale, Suite, median

GOAL = 0.90


def wrk(url: str, seconds: float, connections: int, headers: dict[str, str] | None = None) -> float:
    """Requests per second that ``wrk`` reached against ``url`` (non-2xx answers are an error)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        argv + [url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    if "Non-2xx or 3xx responses" in out:
        raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return float(match.group(1))


def run(scale: Scale) -> Result:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    # Many short alternating rounds rather than a few long ones: load from
    # elsewhere on the machine then falls on both routes alike.
    rounds = scale.pick(12, 1)
    seconds = 1
    connections = 8
    with Suite(components=("api",), workers=2) as suite:
        token = suite.service_token()
        health = suite.url("api") + "/healthz"
        protected = suite.url("api") + "/api/messages"
        auth = {"Authorization": f"Bearer {token}"}
        # Warm-up: discovery and the JWKS fetch in every worker, imports, caches.
        wrk(protected, 1, connections, auth)
        wrk(health, 1, connections)
        pairs = []
        for _ in range(rounds):
            open_rps = wrk(health, seconds, connections)
            token_rps = wrk(protected, seconds, connections, auth)
            pairs.append((open_rps, token_rps))
    ratio = median([t / o for o, t in pairs])
    return Result(
        key="api",
        title="Resource server: /api/messages vs /healthz requests/s",
        figure=f"{ratio:.2f}x",
        goal=f">= {GOAL:.2f}x",
        met=ratio >= GOAL,
        details=[
            f"round {i + 1}: /healthz {o:,.0f} req/s, /api/messages {t:,.0f} req/s"
            for i, (o, t) in enumerate(pairs)
        ],
        how=(
            f"wrk -t1 -c{connections}, {rounds} alternating rounds of {seconds} s per route against one "
            "gunicorn resource server (2 workers x 4 threads, as the Procfile); /api/messages with a real "
            "client-credentials token in -H 'Authorization: Bearer'; median of per-round ratios. "
            "Steady state: the same token on every "
            "request, as a client sends it."
        ),
    )
