"""Fixtures for the native-app simulator: its command line run as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import ROOT


def cli_env(suite_env: dict[str, str], token_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of one CLI run: the suite's, a private token directory, overrides."""
    return {
        **os.environ,
        **suite_env,
        "NATIVE_TOKEN_DIR": str(token_dir),
        "XDG_CONFIG_HOME": str(token_dir.parent / "xdg-config"),
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


def run_cli(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``python -m native_sim ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "native_sim", *args],
        cwd=ROOT,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def token_dir(tmp_path) -> Path:
    """Where this test's CLI runs keep their tokens (created by the CLI itself)."""
    return tmp_path / "oauth-samples"


@pytest.fixture
def env(suite_env, token_dir) -> dict[str, str]:
    """The CLI environment for this test.

    ``PAR=off``: these tests read the plain authorization request (its
    ``redirect_uri``, ``state``) off the printed URL; a pushed request's URL
    carries only ``client_id`` and ``request_uri`` (``test_login_par.py``).
    """
    return cli_env(suite_env, token_dir, PAR="off")


class LoginRun:
    """``python -m native_sim login --no-browser`` running in the background.

    Standard output and error are collected line by line as they come, so a
    test can pick up the printed authorization URL while the command waits.
    """

    def __init__(self, env: dict[str, str], *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "native_sim", "login", "--no-browser", *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def authorization_url(self, timeout: float = 30) -> str:
        """The URL the command printed on a line of its own."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.out):
                # (After a push, RFC 9126 §4, the URL carries request_uri instead of state.)
                if line.startswith(("http://", "https://")) and ("state=" in line or "request_uri=" in line):
                    return line
            if self.proc.poll() is not None and not self._readers[0].is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no authorization URL printed; stdout={self.out!r} stderr={self.err!r}")

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Wait for the command to end: ``(exit code, stdout, stderr)``."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code, "\n".join(self.out), "\n".join(self.err)

    def stop(self) -> None:
        """Stop the command by PID if it is still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def start_login():
    """Start ``login --no-browser`` runs; each is stopped by PID at the end of the test."""
    runs: list[LoginRun] = []

    def start(env: dict[str, str], *extra: str) -> LoginRun:
        run = LoginRun(env, *extra)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()
