"""1, 8, 9. Our resource server side by side with what a user would deploy instead of it.

Four servers answer ``GET /api/messages`` for the same access tokens: ours
(``resource_server``) and the three peers of :mod:`benchmarks.peers`, each
written from its vendor's quickstart (Auth0's Authlib ``ResourceProtector``,
Okta's ``okta-jwt-verifier``, PyJWT's ``PyJWKClient``).  Every one runs
under the same gunicorn command (2 workers x 4 threads, gthread, as the
Procfile), ours from ``.venv``, the peers from their own ``.venv-peers``
(``make bench`` builds it from ``benchmarks/peers/requirements.txt``).

The tokens come from a test issuer in this process (the loopback HTTPS
:class:`~benchmarks.token_validation.KeyServer`, discovery and JWKS over
real HTTPS, its certificate trusted through ``SSL_CERT_FILE`` and
``REQUESTS_CA_BUNDLE``), so every server fetches the keys its own way and
no issuer is in the measured path.  Two loads, each in alternating short
rounds (the order rotating every round, so that load from elsewhere on the
machine falls on every server alike), all with the same ``wrk`` settings:

* **one token repeated**: the steady state of a client that sends its token
  until it expires; ours also against its own unauthenticated ``/healthz``;
* **never-seen tokens**: a pool of distinct valid tokens, cycled by a
  ``wrk`` Lua script that starts each round where the last one stopped, so
  no server can answer from a cache of verified tokens (the pool is larger
  than what our cache can remember per worker).

Where ``taskset`` works, ``wrk`` runs on the first allowed CPU and every
server on the others, so the load generator does not steal the servers'
CPU.  Each figure is the median over rounds, with its spread (min-max).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import ROOT, VENV_BIN, Service, free_port

from .support import Result, Scale, median
from .token_validation import AUDIENCE, KeyServer

PEERS_DIR = ROOT / "benchmarks" / "peers"
PEERS_VENV_BIN = ROOT / ".venv-peers" / "bin"

#: name -> module in benchmarks/peers (factory ``create_app()``).
PEERS = {
    "Auth0 (Authlib)": "auth0_authlib",
    "Okta (okta-jwt-verifier)": "okta_verifier",
    "PyJWT (PyJWKClient)": "pyjwt_jwks",
}
OURS = "ours"
HEALTHZ = "ours /healthz"

GOAL_VS_PEER = 1.0
GOAL_VS_HEALTHZ = 0.90
CONNECTIONS = 8

#: Cycles the token pool (one token per line in the file given as the first script argument),
#: starting at the offset given as the second, so each round sends tokens not yet sent.
TOKENS_LUA = """
local tokens = {}
local next_index = 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  next_index = tonumber(args[2]) or 0
end
function request()
  local token = tokens[(next_index % #tokens) + 1]
  next_index = next_index + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
end
"""


@dataclass
class Round:
    """What ``wrk`` measured in one round against one server."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_us: float = float("nan")  # the server's CPU time per request (all its processes)


@dataclass
class Target:
    """One server under load, and its rounds per load."""

    name: str
    url: str
    pid: int  # gunicorn's master: its CPU time and its workers'
    rounds: dict[str, list[Round]] = field(default_factory=lambda: {"repeated": [], "new": []})
    offset: int = 0  # the next token of the pool for the never-seen load


def cpu_split() -> tuple[list[str], list[str], str]:
    """``taskset`` prefixes for wrk and for the servers, and a sentence saying what was pinned."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = []
    if len(allowed) < 2 or shutil.which("taskset") is None:
        return [], [], "not pinned (fewer than 2 usable CPUs, or no taskset)"
    wrk_cpu, server_cpus = str(allowed[0]), ",".join(str(cpu) for cpu in allowed[1:])
    if subprocess.run(["taskset", "-c", wrk_cpu, "true"], capture_output=True).returncode != 0:
        return [], [], "not pinned (taskset is not allowed here)"
    return (
        ["taskset", "-c", wrk_cpu],
        ["taskset", "-c", server_cpus],
        f"wrk pinned to CPU {wrk_cpu}, every server to CPU {server_cpus} (taskset)",
    )


def gunicorn_argv(gunicorn: Path, port: int, factory: str, chdir: Path | None) -> list[str]:
    """The one gunicorn command line every server runs with (2 workers x 4 threads, gthread)."""
    argv = [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"]
    argv += ["--worker-class", "gthread", "--timeout", "30", "--graceful-timeout", "5", "--no-control-socket"]
    return argv + (["--chdir", str(chdir)] if chdir else []) + [factory]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (gunicorn's master and workers), from /proc."""
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for each in [pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out: str) -> Round:
    """Requests/s, p50, p99 and the request count from ``wrk --latency`` output."""
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    if not (rps and count and p50 and p99):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return Round(float(rps.group(1)), _ms(*p50.groups()), _ms(*p99.groups()), int(count.group(1)))


class Bench:
    """The test issuer, the four servers and the wrk runs against them."""

    def __init__(self, scale: Scale):
        self.scale = scale
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-peers-"))
        self.wrk_prefix, self.server_prefix, self.pinning = cpu_split()
        self.keys = KeyServer()
        self.services: list[Service] = []
        self.targets: list[Target] = []
        self.missing: list[str] = []

    def peers_gunicorn(self) -> Path | None:
        """The peers' gunicorn: ``.venv-peers``'s; for the smoke run without it, ours (PyJWT peer only)."""
        if (PEERS_VENV_BIN / "gunicorn").exists():
            return PEERS_VENV_BIN / "gunicorn"
        return VENV_BIN / "gunicorn" if self.scale.quick else None

    def _serve(self, name: str, argv: list[str], env: dict[str, str], health: str) -> Service:
        port = int(argv[argv.index("--bind") + 1].rsplit(":", 1)[1])
        service = Service(f"bench-{name}", self.server_prefix + argv, env, port, health, log_dir=self.tmp)
        self.services.append(service.start(timeout=60))
        return service

    def start(self) -> "Bench":
        self.keys.start()
        env = {
            "ISSUER": self.keys.issuer,
            "API_AUDIENCE": AUDIENCE,
            "SSL_CERT_FILE": self.keys.ca_file,  # urllib (Authlib's quickstart, PyJWT) and aiohttp (Okta)
            "REQUESTS_CA_BUNDLE": self.keys.ca_file,  # requests (ours)
        }
        argv = gunicorn_argv(VENV_BIN / "gunicorn", free_port(), "resource_server:create_app()", None)
        ours = self._serve(OURS, argv, env, "/healthz")
        self.targets += [
            Target(OURS, ours.url + "/api/messages", ours.proc.pid),
            Target(HEALTHZ, ours.url + "/healthz", ours.proc.pid),
        ]
        gunicorn = self.peers_gunicorn()
        # The smoke run (``--quick``) needs no peers venv: PyJWT's peer runs on ours.
        wanted = PEERS if not self.scale.quick else {"PyJWT (PyJWKClient)": "pyjwt_jwks"}
        for name, module in PEERS.items():
            if gunicorn is None or name not in wanted:
                self.missing.append(name)
                continue
            argv = gunicorn_argv(gunicorn, free_port(), f"{module}:create_app()", PEERS_DIR)
            peer = self._serve(module, argv, env, "/api/messages")
            self.targets.append(Target(name, peer.url + "/api/messages", peer.proc.pid))
        return self

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.keys.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)  # the token pool is megabytes

    def wrk(self, target: Target, seconds: int, token: str | None, tokens_file: Path | None) -> Round:
        """One wrk run: one token in the header, or the pool cycled from the target's offset."""
        argv = self.wrk_prefix + [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "--latency",
        ]
        if token:
            argv += ["-H", f"Authorization: Bearer {token}"]
        if tokens_file:
            argv += [
                "-s",
                str(self.tmp / "tokens.lua"),
                target.url,
                "--",
                str(tokens_file),
                str(target.offset),
            ]
        else:
            argv.append(target.url)
        cpu_before = cpu_seconds(target.pid)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
        measured = parse_wrk(out)
        measured.cpu_us = (cpu_seconds(target.pid) - cpu_before) / max(measured.requests, 1) * 1e6
        target.offset += measured.requests
        return measured

    def run_load(self, load: str, targets: list[Target], rounds: int, seconds: int, **how) -> None:
        """Warm every target up (untimed), then ``rounds`` rounds, each server in turn, order rotating."""
        for target in targets:
            self.wrk(target, 1, **how)
        for number in range(rounds):
            order = targets[number % len(targets) :] + targets[: number % len(targets)]
            for target in order:
                target.rounds[load].append(self.wrk(target, seconds, **how))

    def measure(self) -> None:
        rounds, seconds = self.scale.pick(7, 1), self.scale.pick(3, 1)
        repeated = self.keys.mint()
        self.run_load("repeated", self.targets, rounds, seconds, token=repeated, tokens_file=None)
        # Our cache remembers 4096 tokens per worker: a pool of 16,000 cycled
        # in order is never seen twice by a worker that still remembers it.
        pool = [self.keys.mint() for _ in range(self.scale.pick(16000, 1000))]
        tokens_file = self.tmp / "tokens.txt"
        tokens_file.write_text("\n".join(pool) + "\n")
        (self.tmp / "tokens.lua").write_text(TOKENS_LUA)
        api_targets = [t for t in self.targets if t.name != HEALTHZ]
        self.run_load("new", api_targets, rounds, seconds, token=None, tokens_file=tokens_file)


# -- the table rows -------------------------------------------------------------------------------------


def spread(values: list[float], unit: str = "", digits: int = 0) -> str:
    """``median (min-max)``."""
    return f"{median(values):,.{digits}f}{unit} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def ratios(ours: Target, other: Target, load: str) -> list[float]:
    """Per-round requests/s of ours over ``other`` (round i against round i)."""
    return [a.rps / b.rps for a, b in zip(ours.rounds[load], other.rounds[load], strict=True)]


def server_lines(targets: list[Target], load: str) -> list[str]:
    lines = []
    for target in targets:
        rounds = target.rounds[load]
        if rounds:
            lines.append(
                f"{target.name:<26} {spread([r.rps for r in rounds], ' req/s')}  "
                f"p50 {spread([r.p50_ms for r in rounds], ' ms', 2)}  "
                f"p99 {spread([r.p99_ms for r in rounds], ' ms', 2)}  "
                f"server CPU {spread([r.cpu_us for r in rounds], ' us/req')}"
            )
    return lines


def peer_result(bench: Bench, load: str, key: str, title: str, how: str) -> Result:
    ours = bench.targets[0]
    peers = [t for t in bench.targets if t.name in PEERS]
    by_peer = {peer.name: ratios(ours, peer, load) for peer in peers}
    figure = ", ".join(f"{median(r):.2f}x {name.split()[0]}" for name, r in by_peer.items())
    details = server_lines([t for t in bench.targets if t.name != HEALTHZ], load)
    details += [f"ours / {name}: {spread(r, 'x', 2)}" for name, r in by_peer.items()]
    details += [
        f"{name}: not measured (its virtualenv .venv-peers is missing, or --quick)" for name in bench.missing
    ]
    return Result(
        key=key,
        title=title,
        figure=figure or "no peer measured",
        goal=f">= {GOAL_VS_PEER:.1f}x every peer",
        met=None
        if bench.missing or not by_peer
        else all(median(r) >= GOAL_VS_PEER for r in by_peer.values()),
        details=details + [bench.pinning],
        how=how,
    )


def healthz_result(bench: Bench, how: str) -> Result:
    ours, healthz = bench.targets[0], bench.targets[1]
    per_round = ratios(ours, healthz, "repeated")
    ratio = median(per_round)
    return Result(
        key="api",
        title="Resource server: /api/messages vs /healthz requests/s",
        figure=f"{ratio:.2f}x ({min(per_round):.2f}-{max(per_round):.2f}x)",
        goal=f">= {GOAL_VS_HEALTHZ:.2f}x",
        met=ratio >= GOAL_VS_HEALTHZ,
        details=server_lines([ours, healthz], "repeated") + [bench.pinning],
        how=how,
    )


def run(scale: Scale) -> tuple[Result, Result, Result]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    bench = Bench(scale)
    try:
        bench.start().measure()
    finally:
        bench.stop()
    rounds, seconds = scale.pick(7, 1), scale.pick(3, 1)
    common = (
        f"wrk -t1 -c{CONNECTIONS} --latency, {rounds} rounds of {seconds} s per server, the order rotating "
        "each round, after a 1 s warm-up each; every server under the same gunicorn command (2 workers x "
        "4 threads, gthread); tokens from a loopback HTTPS test issuer whose JWKS each server fetches "
        "itself; median over rounds (min-max); ratio = median of per-round ratios. "
    )
    return (
        healthz_result(bench, common + "Ours with one token repeated vs its own /healthz (no token)."),
        peer_result(
            bench,
            "repeated",
            "peers",
            "Peers, one token repeated: ours / peer req/s",
            common + "The same valid token on every request, as a client sends it until it expires.",
        ),
        peer_result(
            bench,
            "new",
            "peers-new",
            "Peers, never-seen tokens: ours / peer req/s",
            common + f"A pool of {scale.pick(16000, 1000):,} distinct valid tokens cycled by a wrk Lua "
            "script, each round going on where the last stopped: more tokens than our cache remembers, so no "
            "answer comes from a cache of verified tokens.",
        ),
    )
