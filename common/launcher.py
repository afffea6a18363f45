"""``make run``: start the whole suite on its embedded defaults.

1. Validate the settings of every component it will start (one clear line
   and exit 2 on a bad value: better than one process dying later and
   honcho stopping the rest); warn about values that are valid but
   probably wrong (an ``ISSUER`` with a trailing ``/``).
2. Refuse, in one line, to start a second suite: one from this checkout
   is still running (its ``instance/`` holds one Redis directory per
   suite), or a port a component needs is taken.
3. Start a private Redis with a password when ``REDIS_URL`` is unset
   (:mod:`common.embedded_redis`, files under ``instance/redis``), and
   write ``instance/suite.json`` (:mod:`common.running_suite`) so that
   ``make stop`` and the command-line tools find the running suite.
4. Start, through honcho and the ``Procfile``, the dev issuer (unless
   ``ISSUER`` points elsewhere), the resource server and every app that
   exists, each under gunicorn, with prefixed logs.
5. Print where to click and the demo credentials once everything answers.
6. On Ctrl-C (or ``make stop``: SIGTERM) stop everything, Redis last, and
   exit 0.

``python -m common.launcher --stop`` (``make stop``) signals the suite
started from this checkout in another terminal.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .config import DEFAULTS, PROJECT_ROOT, ConfigError, Settings, load_settings, read_environment
from .config_checks import issuer_warnings
from .embedded_redis import port_free, shown, start_embedded_redis
from .running_suite import (
    PASSWORD_FILE_NAME,
    SUITE_FILE_NAME,
    instance_dir,
    launcher_alive,
    read_suite,
    remove_suite,
    write_suite,
)
from .tls_front import ensure_certificates, https_environment, render_nginx, start_nginx

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; the suite file alone says a suite is running
    fcntl = None

VENV_BIN = Path(sys.executable).parent

#: Procfile process name -> the package it runs (also its settings component, see common.config).
PROCESSES = {
    "issuer": "dev_issuer",
    "api": "resource_server",
    "web": "web_app",
    "spa": "spa_app",
    "service": "service_app",
}

#: Procfile process name -> the variable that sets its port (named when the port is taken).
PORT_VARIABLES = {
    "issuer": "ISSUER",
    "api": "API_URL",
    "web": "WEB_BASE_URL",
    "spa": "SPA_BASE_URL",
    "service": "SERVICE_BASE_URL",
}

#: Seconds ``make stop`` waits for the suite to stop.
STOP_TIMEOUT = 30


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def public_urls(settings: Settings) -> dict[str, str]:
    """Procfile process name -> its public URL (where browsers and the other components reach it)."""
    return {
        "issuer": settings.issuer_base_url,
        "api": settings.api_url,
        "web": settings.web_base_url,
        "spa": settings.spa_base_url,
        "service": settings.service_base_url,
    }


def plan(settings: Settings) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Which Procfile processes to run, their bind addresses and health URLs.

    A process listens on its ``*_BIND`` (``WEB_BIND`` ...) when set: a proxy
    in front owns the public URL.  Else on ``127.0.0.1`` and the port of
    its public URL: loopback only, these are development servers with
    development secrets.  Health is asked at the bind address (``/healthz``
    answers under any ``Host``, common/hosts.py), so it works before and
    without the proxy.
    """
    names, binds, health = [], {}, {}
    for name, package in PROCESSES.items():
        if name == "issuer" and not settings.uses_dev_issuer:
            continue  # ISSUER points at a real issuer (Okta ...): nothing to start
        if importlib.util.find_spec(package) is None:
            continue  # a package removed from this checkout
        variable = f"{name.upper()}_BIND"
        bind = getattr(settings, variable.lower()) or f"127.0.0.1:{_port_of(public_urls(settings)[name])}"
        names.append(name)
        binds[variable] = bind
        health[name] = f"http://{_connectable(bind)}/healthz"
    return names, binds, health


def _connectable(bind: str) -> str:
    """``host:port`` to connect to for a bind address (``0.0.0.0`` and ``[::]`` mean loopback here)."""
    host, _, port = bind.rpartition(":")
    return f"{ {'0.0.0.0': '127.0.0.1', '[::]': '[::1]'}.get(host, host) }:{port}"


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
        ("spa", "Single-page app (BFF, PKCE, legacy Implicit)", settings.spa_base_url),
        ("service", "Service (Client Credentials) status", settings.service_base_url),
        ("api", "Resource server (API)", settings.api_url + "/healthz"),
        ("issuer", "Dev issuer: Applications page", settings.issuer_base_url + "/admin/apps"),
        ("issuer", "Dev issuer: enter a device code (RFC 8628)", settings.issuer_base_url + "/activate"),
    ]
    print("\n" + "=" * 72)
    print(" The suite is up. Open:")
    for name, label, url in rows:
        if name in names:
            print(f"   {label:<44} {url}")
    print(f"   {'Issuer':<44} {settings.issuer}")
    print(f"   {'Redis':<44} {shown(redis_url)}")
    print("   Native app (loopback + PKCE)                 .venv/bin/python -m native_sim login")
    print("   Device without a browser (device grant)      .venv/bin/python -m native_sim device-login")
    print("   Service from a terminal                      .venv/bin/python -m service_app call --explain")
    print("   Rotate the dev issuer's keys                 .venv/bin/flask --app dev_issuer rotate-keys")
    if settings.uses_dev_issuer:
        print(f"\n Demo user: {settings.demo_username}   password: {settings.demo_password}")
        print(" (development values from common/variables.py; override them in .env)")
    print(" Ctrl-C (or `make stop` in another terminal) stops everything.")
    print("=" * 72 + "\n", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The launcher's command line: ``--check``, ``--stop`` and ``--instance``."""
    parser = argparse.ArgumentParser(prog="python -m common.launcher", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="only validate the settings and exit")
    action.add_argument(
        "--stop", action="store_true", help="stop the suite started from this checkout (make stop)"
    )
    parser.add_argument(
        "--https",
        action="store_true",
        help="put nginx with a locally generated certificate in front, on https (make run-https)",
    )
    parser.add_argument(
        "--instance",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the suite keeps its files: Redis's, its password, suite.json (default: INSTANCE_DIR, "
        "else instance/)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Check every component's settings, then start Redis (if embedded) and the suite; or ``--stop`` it."""
    args = parse_args(argv)
    if args.stop:
        return stop_suite(args.instance or instance_dir(read_environment()["INSTANCE_DIR"]))
    if args.https:
        # Before the settings are read: the https URLs, binds and proxy count
        # become the environment of the launcher and of every child.
        os.environ.update(https_environment(read_environment(), DEFAULTS))
    try:
        settings = load_settings(component="launcher")
        names, binds, health = plan(settings)
        check_components(names)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    for warning in issuer_warnings(settings.issuer):
        print(f"launcher: warning: {warning}", file=sys.stderr)
    if args.check:
        print("configuration OK")
        return 0
    instance = args.instance or instance_dir(settings.instance_dir)
    explicit = {variable for variable in binds if getattr(settings, variable.lower())}
    refusal = claim_instance(instance) or busy_port(binds, explicit)
    if refusal:
        print(f"launcher: {refusal}", file=sys.stderr)
        return 1
    return start_suite(settings, names, binds, health, instance, https=args.https)


#: The open lock file of this launcher's instance directory (held until the process ends).
_instance_lock: int | None = None


def claim_instance(instance: Path) -> str | None:
    """Make this launcher the one suite of ``instance``; or say which suite already runs there.

    One suite per instance directory: two would share one Redis directory
    (its ``dump.rdb``) and one ``suite.json``.
    """
    global _instance_lock
    instance.mkdir(parents=True, exist_ok=True)
    running = read_suite(instance)
    fd = os.open(instance / "launcher.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        elif running:
            raise BlockingIOError
    except BlockingIOError:
        os.close(fd)
        pid = f" (PID {running['pid']})" if running else ""
        return f"a suite is already running from this checkout{pid}: `make stop` stops it"
    _instance_lock = fd
    return None


def busy_port(binds: dict[str, str], explicit: set[str] = frozenset()) -> str | None:
    """The first port a component needs that is taken, as one line naming it and the likely cause.

    :param explicit: the ``*_BIND`` variables that were set (named instead of the base URL's).
    """
    for variable, address in binds.items():
        host, _, port = address.rpartition(":")
        if not port_free(int(port), host.strip("[]")):
            name = variable.removesuffix("_BIND").lower()
            source = variable if variable in explicit else PORT_VARIABLES[name]
            return (
                f"port {port} ({name}, from {source}) is already in use: another suite is "
                f"running? `make stop` (or stop what listens on {port}, or move {source} "
                "to another port)"
            )
    return None


def start_suite(
    settings: Settings,
    names: list[str],
    binds: dict[str, str],
    health: dict[str, str],
    instance: Path,
    https: bool = False,
) -> int:
    """Start Redis (if embedded), nginx (``https``), ``suite.json`` and honcho; stop them on the way out."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # `kill` (SIGTERM, what `make stop` sends) stops the suite as gracefully
    # as Ctrl-C does, so no gunicorn or Redis is left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    redis_proc = nginx_proc = None
    redis_url = settings.redis_url
    try:
        if https:
            nginx_proc = start_tls_front(settings, names, binds, instance, env)
        if not redis_url:
            redis_proc, redis_url = start_embedded_redis(instance / "redis", instance)
            env["REDIS_URL"] = redis_url
            print(
                f"launcher: started an embedded Redis at {shown(redis_url)} (files in {instance / 'redis'}, "
                f"password in {instance / PASSWORD_FILE_NAME})",
                flush=True,
            )
        env.update(binds)
        ports = {name: int(address.rpartition(":")[2]) for name, address in binds.items()}
        write_suite(instance, pid=os.getpid(), redis_url=redis_url, ports=ports)
        return run_honcho(settings, names, health, env, redis_url)
    except KeyboardInterrupt:  # stopped before honcho ran
        return 0
    except FrontUnavailable as error:
        print(f"launcher: {error}", file=sys.stderr)
        return 1
    finally:
        if nginx_proc is not None:
            nginx_proc.terminate()
            nginx_proc.wait(timeout=10)
            print("launcher: nginx stopped", flush=True)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            print("launcher: embedded Redis stopped", flush=True)
        # Last: until now `make stop` and the command-line tools may still use the suite.
        remove_suite(instance, os.getpid())


class FrontUnavailable(RuntimeError):
    """``--https``: nginx cannot take a public port."""


def start_tls_front(
    settings: Settings, names: list[str], binds: dict[str, str], instance: Path, env: dict[str, str]
) -> subprocess.Popen:
    """``--https``: the certificates, nginx in front of every process, and the CA trusted by the children.

    The apps call the issuer and the API at their https public URLs, through
    nginx; ``REQUESTS_CA_BUNDLE`` (requests) and ``SSL_CERT_FILE`` (Python's
    ``ssl``) make them trust the generated CA as well as the public ones.
    """
    trust = ensure_certificates(instance / "tls")
    env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = str(trust)
    urls = public_urls(settings)
    fronts = {name: (urls[name], _connectable(binds[f"{name.upper()}_BIND"])) for name in names}
    taken = [f"{urls[name]} ({name})" for name in names if not port_free(_port_of(urls[name]))]
    if taken:
        raise FrontUnavailable(
            f"nginx cannot listen on {', '.join(taken)}: the port is in use (`make stop`?)"
        )
    proc = start_nginx(render_nginx(instance / "nginx", fronts))
    print(f"launcher: nginx serves https in front of {', '.join(names)} (CA: {instance / 'tls' / 'ca.pem'})")
    return proc


def run_honcho(
    settings, names: list[str], health: dict[str, str], env: dict[str, str], redis_url: str
) -> int:
    """Start the Procfile's processes ``names`` through honcho; print the table once all are healthy.

    :return: 0 when the suite was asked to stop (Ctrl-C, ``make stop``) and
        stopped; honcho's exit code when a component ended the suite.
    """
    honcho = [str(VENV_BIN / "honcho"), "-f", str(PROJECT_ROOT / "Procfile"), "-d", str(PROJECT_ROOT)]
    started = time.monotonic()
    procs = subprocess.Popen([*honcho, "start", *names], env=env, cwd=PROJECT_ROOT)
    try:
        missing = wait_healthy(health, procs)
        if procs.poll() is not None:
            print("launcher: a component exited at start (see the log lines above)", file=sys.stderr)
            return procs.returncode or 1
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
        return _stop_honcho(procs)
    finally:
        if procs.poll() is None:
            procs.terminate()
            procs.wait()


def _stop_honcho(procs: subprocess.Popen) -> int:
    """Stop honcho (and so its children) after Ctrl-C or SIGTERM: 0 when it stopped in time."""
    # A second Ctrl-C while everything stops must not leave half of it running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Ctrl-C in a terminal reaches honcho too; a `kill` reaches only us.
    # Either way honcho is told once more, and it stops its children.
    if procs.poll() is None:
        procs.send_signal(signal.SIGTERM)
    try:
        procs.wait(timeout=15)
    except subprocess.TimeoutExpired:
        procs.kill()
        procs.wait()
        return 1
    # honcho's own exit code reflects its children dying of SIGTERM (143):
    # for a stop the user asked for, that is success.
    print("launcher: stopped", flush=True)
    return 0


def stop_suite(instance: Path) -> int:
    """``make stop``: signal the launcher that ``instance/suite.json`` names, and wait until it is done."""
    suite = read_suite(instance)
    if suite is None:
        print(f"launcher: no suite is running from this checkout ({instance / SUITE_FILE_NAME} names none)")
        return 0
    pid = suite["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError:
        print(
            f"launcher: the suite (PID {pid}) belongs to another user; stop it as that user", file=sys.stderr
        )
        return 1
    except ProcessLookupError:  # it ended between the look-up and the signal
        pass
    deadline = time.monotonic() + STOP_TIMEOUT
    # Until the launcher has exited: it removes suite.json last, and its lock goes with the process.
    while launcher_alive(pid):
        if time.monotonic() > deadline:
            print(f"launcher: the suite (PID {pid}) did not stop within {STOP_TIMEOUT} s", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"launcher: stopped the suite (PID {pid})")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
