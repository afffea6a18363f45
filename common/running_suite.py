"""The files under ``instance/`` through which ``make run``, ``make stop`` and the command-line tools meet.

``make run`` (:mod:`common.launcher`) writes ``suite.json`` once its
embedded Redis answers: the launcher's PID and that Redis's URL, password
included, so the file has mode 0600. It removes the file when it stops.
With it,

* ``make stop`` finds the launcher to signal, from any terminal;
* a second ``make run`` in the same checkout sees that a suite is already
  running there (one Redis directory per running suite);
* a command started by hand (``flask --app dev_issuer rotate-keys``,
  ``flask --app web_app run``) without ``REDIS_URL`` finds the running
  suite's Redis by itself (:func:`common.config.load_settings`).

``redis-password`` is the embedded Redis's password (``requirepass``),
generated once, mode 0600, and kept across runs.

The directory is ``INSTANCE_DIR``, by default ``instance/`` in the checkout.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from .config_checks import PROJECT_ROOT

#: The running suite's file, and the embedded Redis's password, inside the instance directory.
SUITE_FILE_NAME = "suite.json"
PASSWORD_FILE_NAME = "redis-password"


def instance_dir(value: str = "") -> Path:
    """``INSTANCE_DIR`` as a path: ``value``, or ``instance/`` in the checkout when it is empty."""
    return Path(value).expanduser() if value.strip() else PROJECT_ROOT / "instance"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def redis_password(directory: Path) -> str:
    """The embedded Redis's password: read from ``redis-password``, or made (mode 0600) the first time."""
    path = directory / PASSWORD_FILE_NAME
    try:
        password = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        password = ""
    # URL-safe characters only: the password goes into redis://:password@host as it is.
    if not password or not password.replace("-", "").replace("_", "").isalnum():
        password = secrets.token_urlsafe(32)
        write_private(path, password + "\n")
    os.chmod(path, 0o600)
    return password


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # it exists, but is another user's: not our launcher
    return True


def launcher_alive(pid: int) -> bool:
    """Whether ``pid`` is still a running launcher (not a process that reused the PID of a dead one)."""
    if not pid_alive(pid):
        return False
    try:
        if Path(f"/proc/{pid}").stat().st_uid != os.getuid():
            return False  # another user's process, whatever its command line says
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): the PID is all there is to go by
    return b"common.launcher" in command and state != "Z"


def write_suite(directory: Path, *, pid: int, redis_url: str, ports: dict[str, int]) -> Path:
    """Record the running suite (mode 0600: the Redis URL holds its password)."""
    path = directory / SUITE_FILE_NAME
    write_private(path, json.dumps({"pid": pid, "redis_url": redis_url, "ports": ports}, indent=2) + "\n")
    return path


def read_suite(directory: Path) -> dict[str, Any] | None:
    """The running suite's record, or ``None``: no file, a malformed one, or its launcher has gone.

    A launcher killed with ``kill -9`` leaves its file behind; its PID then
    names no process and the file is ignored.
    """
    path = directory / SUITE_FILE_NAME
    if not _ours_and_private(path):
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int) or record["pid"] <= 0:
        return None
    return record if launcher_alive(record["pid"]) else None


def _ours_and_private(path: Path) -> bool:
    """Whether ``path`` and its directory belong to us and no one else may write (or read) the file.

    The file names the Redis, password included, that every tool started
    by hand then trusts with sessions and the issuer's keys: a file another
    local user could have written must not count.
    """
    try:
        file, folder = path.lstat(), path.parent.stat()
    except OSError:
        return False
    uid = os.getuid()
    return (
        stat.S_ISREG(file.st_mode)
        and file.st_uid == uid
        and file.st_mode & 0o077 == 0
        and folder.st_uid == uid
        and folder.st_mode & 0o022 == 0
    )


def remove_suite(directory: Path, pid: int) -> None:
    """Remove the suite file if it is the one launcher ``pid`` wrote."""
    path = directory / SUITE_FILE_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and record.get("pid") == pid:
        path.unlink(missing_ok=True)
