"""Two ``native_sim`` runs refreshing at once must not spend the same refresh token twice.

The dev issuer rotates refresh tokens and revokes the whole grant when a
retired one comes back (RFC 9700 §4.14.2). Each thread below is one
``native_sim`` run: its own settings, its own store object on the shared
token directory, the real command code, the real dev issuer.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common.config import load_settings
from native_sim import commands
from native_sim.storage import FileTokenStore
from tests.native_sim.conftest import run_cli
from tests.support import ROOT

pytestmark = pytest.mark.usefixtures("dev_issuer", "resource_server")


class _MeetingStore(FileTokenStore):
    """A file store whose first ``load`` waits until every run has read the tokens.

    So each run starts its refresh from the same refresh token, the way two
    commands started at the same moment do.
    """

    def __init__(self, directory: Path, barrier: threading.Barrier):
        super().__init__(directory)
        self._barrier = barrier
        self._loads = 0

    def load(self):
        record = super().load()
        self._loads += 1
        if self._loads == 1:
            self._barrier.wait(timeout=30)
        return record


def _context(suite_env, token_dir: Path, store: FileTokenStore) -> commands.Context:
    settings = load_settings({**suite_env, "NATIVE_TOKEN_DIR": str(token_dir)}, component="native_sim")
    return commands.Context(settings=settings, store=store, out=io.StringIO(), err=io.StringIO())


def test_concurrent_refreshes_keep_the_grant(suite_env, env, token_dir):
    settings = load_settings(suite_env)
    signed_in = run_cli(
        env,
        "password-login",
        "--username",
        settings.demo_username,
        "--password-stdin",
        input=settings.demo_password + "\n",
    )
    assert signed_in.returncode == 0, signed_in.stderr
    before = FileTokenStore(token_dir).load()["tokens"]["refresh_token"]

    runs = 3
    barrier = threading.Barrier(runs)
    results: list[object] = [None] * runs

    def refresh(index: int) -> None:
        ctx = _context(suite_env, token_dir, _MeetingStore(token_dir, barrier))
        try:
            results[index] = commands.refresh(ctx)
        except Exception as exc:  # reported below with the others' results
            results[index] = exc

    threads = [threading.Thread(target=refresh, args=(i,)) for i in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [0] * runs, results

    # The grant is alive: the stored tokens are the rotated ones, and they refresh and call the API.
    after = FileTokenStore(token_dir).load()["tokens"]["refresh_token"]
    assert after != before
    again = run_cli(env, "refresh")
    assert again.returncode == 0, again.stderr
    api = run_cli(env, "call-api")
    assert api.returncode == 0, api.stderr


def test_concurrent_refresh_processes_keep_the_grant(suite_env, env, token_dir):
    """Two real processes at once: whichever order they run in, neither revokes the grant."""
    settings = load_settings(suite_env)
    signed_in = run_cli(
        env,
        "password-login",
        "--username",
        settings.demo_username,
        "--password-stdin",
        input=settings.demo_password + "\n",
    )
    assert signed_in.returncode == 0, signed_in.stderr
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "native_sim", "refresh"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(proc.wait(timeout=60), *proc.communicate()) for proc in procs]
    assert [code for code, _, _ in outcomes] == [0] * 4, outcomes
    assert run_cli(env, "call-api").returncode == 0
    assert run_cli(env, "refresh").returncode == 0
