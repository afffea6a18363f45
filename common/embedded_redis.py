"""The private Redis ``make run`` starts when ``REDIS_URL`` is unset.

Bound to loopback, on a stable port (6380 unless that is taken by another
program), with a password (``requirepass``) generated once into
``instance/redis-password`` (mode 0600). Every process of the suite reaches
it through ``REDIS_URL=redis://:password@127.0.0.1:port/0``: a local program
that can connect to a port cannot read a session, a refresh token or the
issuer's signing keys without the password, which only the user can read.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .running_suite import redis_password, write_private

#: The embedded Redis's port unless something else listens there.
PREFERRED_PORT = 6380


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now.

    With ``SO_REUSEADDR``, as every server here sets it (Redis, gunicorn):
    a port whose last connections linger in TIME_WAIT after a quick
    restart is free for a server, and without the option the probe would
    call it taken and the embedded Redis would move to another port.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _config(directory: Path, port: int, password: str) -> str:
    """redis.conf: the password lives in a file only the user can read, never on a command line (``ps``)."""
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f'dir "{directory}"',
            "dbfilename dump.rdb",
            "save 60 1",
            "appendonly no",
            f'logfile "{directory / "redis.log"}"',
            f'requirepass "{password}"',
            "",
        ]
    )


def start_embedded_redis(
    directory: Path, password_directory: Path, preferred_port: int = PREFERRED_PORT
) -> tuple[subprocess.Popen, str]:
    """Start a private ``redis-server`` bound to loopback, with a password.

    :param directory: its data directory (``instance/redis``).
    :param password_directory: where ``redis-password`` lives (``instance/``).
    :return: the process and its ``redis://:password@127.0.0.1:port/0`` URL.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "REDIS_URL is unset and no redis-server is installed: run `make run` (it installs "
            "Debian's redis-server) or set REDIS_URL=redis://host:6379/0"
        )
    port = next((p for p in range(preferred_port, preferred_port + 50) if port_free(p)), None)
    if port is None:
        raise SystemExit(
            f"launcher: no free port for the embedded Redis in {preferred_port}-{preferred_port + 49}"
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkdir leaves an existing folder as it was (an older checkout made it
    # 0755): the dump holds sessions, refresh tokens and the issuer's keys.
    os.chmod(directory, 0o700)
    for stored in directory.glob("*.rdb"):
        os.chmod(stored, 0o600)
    password = redis_password(password_directory)
    config = directory / "redis.conf"
    write_private(config, _config(directory.resolve(), port, password))
    proc = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the embedded Redis exited at start; see {directory / 'redis.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://:{password}@127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the embedded Redis did not start within 10 s")


def shown(url: str) -> str:
    """A Redis URL fit to print: the password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}"
