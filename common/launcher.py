"""``make run``: start the whole suite on its embedded defaults.

1. Validate the settings of every component it will start (one clear line
   and exit 2 on a bad value: better than one process dying later and
   honcho stopping the rest).
2. Start a private Redis when ``REDIS_URL`` is unset, files under ``instance/redis``.
3. Start, through honcho and the ``Procfile``, the dev issuer (unless
   ``ISSUER`` points elsewhere), the resource server and every app that
   exists, each under gunicorn, with prefixed logs.
4. Print where to click and the demo credentials once everything answers.
5. On Ctrl-C stop everything, Redis last.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .config import PROJECT_ROOT, ConfigError, Settings, load_settings

INSTANCE = PROJECT_ROOT / "instance"
VENV_BIN = Path(sys.executable).parent

#: Procfile process name -> the package it runs (also its settings component, see common.config).
PROCESSES = {
    "issuer": "dev_issuer",
    "api": "resource_server",
    "web": "web_app",
    "spa": "spa_app",
    "service": "service_app",
}


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_embedded_redis(directory: Path, preferred_port: int = 6380) -> tuple[subprocess.Popen, str]:
    """Start a private ``redis-server`` bound to loopback.

    :return: the process and its ``redis://`` URL.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "REDIS_URL is unset and no redis-server is installed: run `make run` (it installs "
            "Debian's redis-server) or set REDIS_URL=redis://host:6379/0"
        )
    port = next(p for p in range(preferred_port, preferred_port + 50) if _port_free(p))
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the embedded Redis exited at start; see {directory / 'redis.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the embedded Redis did not start within 10 s")


def plan(settings: Settings) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Which Procfile processes to run, their bind addresses and health URLs."""
    urls = {
        "issuer": (settings.issuer_base_url, f"{settings.issuer}/.well-known/openid-configuration"),
        "api": (settings.api_url, f"{settings.api_url}/healthz"),
        "web": (settings.web_base_url, f"{settings.web_base_url}/healthz"),
        "spa": (settings.spa_base_url, f"{settings.spa_base_url}/healthz"),
        "service": (settings.service_base_url, f"{settings.service_base_url}/healthz"),
    }
    names, binds, health = [], {}, {}
    # Loopback only: these are development servers with development secrets.
    host = "127.0.0.1"
    for name, package in PROCESSES.items():
        if name == "issuer" and not settings.uses_dev_issuer:
            continue  # ISSUER points at a real issuer (Okta ...): nothing to start
        if importlib.util.find_spec(package) is None:
            continue  # a package removed from this checkout
        base, health_url = urls[name]
        names.append(name)
        binds[f"{name.upper()}_BIND"] = f"{host}:{_port_of(base)}"
        health[name] = health_url
    return names, binds, health


def check_components(names: list[str]) -> None:
    """Load (and so validate) the settings of each Procfile process in ``names``.

    Each app validates only the variables it reads; the launcher starts
    them all, so it checks them all before starting any.

    :raises ConfigError: naming the first bad variable.
    """
    for name in names:
        load_settings(component=PROCESSES[name])


def wait_healthy(health: dict[str, str], honcho: subprocess.Popen, timeout: float = 60) -> list[str]:
    """Poll every health URL; return the names still not answering."""
    pending = dict(health)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline and honcho.poll() is None:
        for name, url in list(pending.items()):
            try:
                if requests.get(url, timeout=1).status_code < 500:
                    del pending[name]
            except requests.RequestException:
                pass
        time.sleep(0.1)
    return list(pending)


def print_table(settings: Settings, names: list[str], redis_url: str) -> None:
    """Where to click, and how to sign in."""
    rows = [
        ("web", "Web app (Authorization Code)", settings.web_base_url),
        ("spa", "Single-page app (PKCE / legacy Implicit)", settings.spa_base_url),
        ("service", "Service (Client Credentials) status", settings.service_base_url),
        ("api", "Resource server (API)", settings.api_url + "/healthz"),
        ("issuer", "Dev issuer: Applications page", settings.issuer_base_url + "/admin/apps"),
    ]
    print("\n" + "=" * 72)
    print(" The suite is up. Open:")
    for name, label, url in rows:
        if name in names:
            print(f"   {label:<44} {url}")
    print(f"   {'Issuer':<44} {settings.issuer}")
    print(f"   {'Redis':<44} {redis_url}")
    print("   Native app (loopback + PKCE)                 .venv/bin/python -m native_sim login")
    print("   Service from a terminal                      .venv/bin/python -m service_app call --explain")
    if settings.uses_dev_issuer:
        print(f"\n Demo user: {settings.demo_username}   password: {settings.demo_password}")
        print(" (development values from common/config.py; override them in .env)")
    print(" Ctrl-C stops everything.")
    print("=" * 72 + "\n", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The launcher's command line: ``--check`` and ``--instance``."""
    parser = argparse.ArgumentParser(prog="python -m common.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only validate the settings and exit")
    parser.add_argument(
        "--instance",
        type=Path,
        default=INSTANCE,
        metavar="DIR",
        help="where the embedded Redis keeps its files (default: instance/)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Check every component's settings, then start Redis (if embedded) and the suite."""
    args = parse_args(argv)
    try:
        settings = load_settings(component="launcher")
        names, binds, health = plan(settings)
        check_components(names)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    if args.check:
        print("configuration OK")
        return 0

    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    redis_proc = None
    redis_url = settings.redis_url
    if not redis_url:
        redis_proc, redis_url = start_embedded_redis(args.instance / "redis")
        env["REDIS_URL"] = redis_url
        print(
            f"launcher: started an embedded Redis at {redis_url} (files in {args.instance / 'redis'})",
            flush=True,
        )
    env.update(binds)
    try:
        return run_honcho(settings, names, health, env, redis_url)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            print("launcher: embedded Redis stopped", flush=True)


def run_honcho(
    settings, names: list[str], health: dict[str, str], env: dict[str, str], redis_url: str
) -> int:
    """Start the Procfile's processes ``names`` through honcho; print the table once all are healthy."""
    honcho = [str(VENV_BIN / "honcho"), "-f", str(PROJECT_ROOT / "Procfile"), "-d", str(PROJECT_ROOT)]
    started = time.monotonic()
    # `kill` (SIGTERM) stops the suite as gracefully as Ctrl-C does, so no
    # gunicorn or Redis is left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    procs = subprocess.Popen([*honcho, "start", *names], env=env, cwd=PROJECT_ROOT)
    try:
        missing = wait_healthy(health, procs)
        if missing:
            print(
                f"launcher: not healthy after 60 s: {', '.join(missing)} (see the log lines above)",
                file=sys.stderr,
            )
        else:
            print(f"launcher: every component healthy in {time.monotonic() - started:.1f} s", flush=True)
            print_table(settings, names, redis_url)
        return procs.wait()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches honcho too; a `kill` reaches only us.
        # Either way honcho is told once more, and it stops its children.
        if procs.poll() is None:
            procs.send_signal(signal.SIGTERM)
        try:
            return procs.wait(timeout=15)
        except subprocess.TimeoutExpired:
            procs.kill()
            return procs.wait()
    finally:
        if procs.poll() is None:
            procs.terminate()
            procs.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
