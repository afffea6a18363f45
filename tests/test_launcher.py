"""`make run`'s launcher: embedded Redis, every component healthy, Ctrl-C stops all.

Runs the real launcher as a subprocess with its ports moved to free ones,
exactly as a user would run it, and checks what a user sees.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.support import ROOT, free_port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_launcher_starts_the_suite_and_stops_everything(tmp_path, how):
    ports = {name: free_port() for name in ("issuer", "web", "spa", "service", "api")}
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "ISSUER"}}
    env.update(
        {
            "ISSUER": f"http://localhost:{ports['issuer']}/oauth2/default",
            "WEB_BASE_URL": f"http://localhost:{ports['web']}",
            "SPA_BASE_URL": f"http://localhost:{ports['spa']}",
            "SERVICE_BASE_URL": f"http://localhost:{ports['service']}",
            "API_URL": f"http://localhost:{ports['api']}",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "common.launcher", "--instance", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(output)
        assert "The suite is up" in text, text[-3000:]
        assert "started an embedded Redis" in text
        assert "Demo user: testuser1@example.com" in text
        redis_port = int(text.split("redis://127.0.0.1:")[1].split("/")[0])
        assert _listening(redis_port)
        # Every component that `make run` prints answers.
        for name in ("issuer", "api", "web", "spa", "service"):
            if f":{ports[name]}" in text:
                assert _listening(ports[name]), name
        discovery = requests.get(f"{env['ISSUER']}/.well-known/openid-configuration", timeout=5).json()
        assert discovery["issuer"] == env["ISSUER"]
        # The embedded Redis keeps its files where it was told to.
        assert (tmp_path / "redis").is_dir()
    finally:
        if how == "ctrl-c":
            # Ctrl-C in a terminal signals the whole foreground process group.
            os.killpg(proc.pid, signal.SIGINT)
        else:
            # `kill PID` reaches the launcher alone.
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    rest = proc.stdout.read()
    assert "embedded Redis stopped" in rest
    assert not _listening(redis_port)
    for port in ports.values():
        assert not _listening(port)
