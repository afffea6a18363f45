"""6. Cold start: ``make run`` to every component healthy.

Runs the real launcher (``python -m common.launcher``, what ``make run``
runs once the dependencies are installed) with an embedded Redis and every
component on a free port, exactly as ``tests/test_launcher.py`` does, and
times from the moment the process is started until every health URL
answers (polled by the harness itself, every 20 ms).  The launcher's own
"every component healthy in X s" line (which starts counting only after
its Redis is up) is reported alongside.  Then the launcher is stopped with
``SIGTERM`` (it stops everything it started) and waited for.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import requests

from tests.support import ROOT, free_port

from .support import Result, Scale, median

GOAL_SECONDS = 5.0


def launcher_env(ports: dict[str, int]) -> dict[str, str]:
    """The launcher's environment: this one, with every component's URL on its free port."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "ISSUER"}}
    env.update(
        {
            "ISSUER": f"http://127.0.0.1:{ports['issuer']}/oauth2/default",
            "WEB_BASE_URL": f"http://127.0.0.1:{ports['web']}",
            "SPA_BASE_URL": f"http://127.0.0.1:{ports['spa']}",
            "SERVICE_BASE_URL": f"http://127.0.0.1:{ports['service']}",
            "API_URL": f"http://127.0.0.1:{ports['api']}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def health_urls(env: dict[str, str]) -> list[str]:
    """The five URLs that answer once their component is up (the issuer's is its discovery document)."""
    return [
        f"{env['ISSUER']}/.well-known/openid-configuration",
        f"{env['API_URL']}/healthz",
        f"{env['WEB_BASE_URL']}/healthz",
        f"{env['SPA_BASE_URL']}/healthz",
        f"{env['SERVICE_BASE_URL']}/healthz",
    ]


def wait_until_healthy(
    proc: subprocess.Popen, health: list[str], started: float, timeout: float, output: list[str]
) -> None:
    """Poll every health URL every 20 ms until all answer; fail if the launcher exits or time runs out."""
    pending = list(health)
    http = requests.Session()
    while pending:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not healthy after {timeout:.0f} s: {pending}\n{''.join(output)[-2000:]}")
        if proc.poll() is not None:
            raise RuntimeError(f"the launcher exited with {proc.returncode}:\n{''.join(output)[-2000:]}")
        for url in list(pending):
            try:
                if http.get(url, timeout=1).status_code < 500:
                    pending.remove(url)
            except requests.RequestException:
                pass
        if pending:
            time.sleep(0.02)


def launchers_own_seconds(output: list[str]) -> float | None:
    """The launcher's own "every component healthy in X s" figure, or None if it is not printed."""
    # Wait briefly for the launcher's own line (it polls every 0.1 s).
    for _ in range(50):
        match = re.search(r"every component healthy in ([\d.]+) s", "".join(output))
        if match:
            return float(match.group(1))
        time.sleep(0.05)
    return None


def stop_launcher(proc: subprocess.Popen, reader: threading.Thread) -> None:
    """Stop the launcher with SIGTERM and wait for it (SIGKILL to its group after 30 s)."""
    # `kill PID` reaches the launcher alone, and it stops what it started.
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    reader.join(5)


def launch_once(timeout: float = 60.0) -> tuple[float, float | None]:
    """Start the launcher once; return (seconds to all healthy, the launcher's own figure)."""
    ports = {name: free_port() for name in ("issuer", "web", "spa", "service", "api")}
    env = launcher_env(ports)
    health = health_urls(env)
    instance = tempfile.mkdtemp(prefix="bench-launcher-")
    output: list[str] = []
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "common.launcher", "--instance", instance],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until_healthy(proc, health, started, timeout, output)
        elapsed = time.monotonic() - started
        return elapsed, launchers_own_seconds(output)
    finally:
        stop_launcher(proc, reader)


def run(scale: Scale) -> Result:
    """Figure 6: the median cold start over a few launches."""
    runs = scale.pick(3, 1)
    results = [launch_once() for _ in range(runs)]
    seconds = median([elapsed for elapsed, _ in results])
    own = [o for _, o in results if o is not None]
    return Result(
        key="cold-start",
        title="Cold start: make run to every component healthy",
        figure=f"{seconds:.2f} s",
        goal=f"<= {GOAL_SECONDS:.0f} s",
        met=seconds <= GOAL_SECONDS,
        details=[
            f"runs: {', '.join(f'{e:.2f} s' for e, _ in results)}; "
            "launcher's own line (after Redis is up): "
            f"{', '.join(f'{o:.1f} s' for o in own) or 'not printed'}"
        ],
        how=(
            f"median of {runs} run(s) of python -m common.launcher (dependencies installed; "
            "embedded Redis; issuer, API, web, SPA and service apps under gunicorn on free ports), "
            "from process start until all five health URLs answer (polled every 20 ms); "
            "then SIGTERM and wait."
        ),
    )
