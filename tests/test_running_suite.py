"""instance/suite.json and instance/redis-password: how make stop and the tools find the running suite."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from common.config import load_settings
from common.running_suite import read_suite, redis_password, write_suite


def test_the_password_is_made_once_with_mode_0600(tmp_path):
    first = redis_password(tmp_path)
    assert len(first) >= 32 and first == redis_password(tmp_path)
    assert stat.S_IMODE((tmp_path / "redis-password").stat().st_mode) == 0o600


def test_a_suite_file_left_by_a_dead_or_foreign_process_is_ignored(tmp_path):
    # Not a launcher (this test process), then a PID nobody has (above the kernel's pid_max).
    for pid in (os.getpid(), 2**22 + 17):
        write_suite(tmp_path, pid=pid, redis_url="redis://:pw@127.0.0.1:1/0", ports={})
        assert stat.S_IMODE((tmp_path / "suite.json").stat().st_mode) == 0o600
        assert read_suite(tmp_path) is None
        settings = load_settings({"INSTANCE_DIR": str(tmp_path), "REDIS_URL": ""}, component="dev_issuer")
        assert settings.redis_url == ""


def _wait_for_exec(pid: int, word: str, timeout: float = 10.0) -> None:
    """Until the child has exec'd: right after fork, /proc/<pid>/cmdline is still the parent's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if word in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} never showed {word!r} in its command line")


def test_the_running_launchers_redis_is_found_without_redis_url(tmp_path):
    # A process whose command line is a launcher's, standing in for `make run`.
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "common.launcher"], stdout=subprocess.DEVNULL
    )
    try:
        _wait_for_exec(stand_in.pid, "common.launcher")
        write_suite(tmp_path, pid=stand_in.pid, redis_url="redis://:pw@127.0.0.1:6380/0", ports={})
        assert json.loads((tmp_path / "suite.json").read_text())["pid"] == stand_in.pid
        settings = load_settings({"INSTANCE_DIR": str(tmp_path), "REDIS_URL": ""}, component="dev_issuer")
        assert settings.redis_url == "redis://:pw@127.0.0.1:6380/0"
        # REDIS_URL, when set, wins; and the launcher never borrows another suite's Redis.
        assert load_settings({"INSTANCE_DIR": str(tmp_path), "REDIS_URL": "redis://h:1/0"}).redis_url == (
            "redis://h:1/0"
        )
        launcher = load_settings({"INSTANCE_DIR": str(tmp_path), "REDIS_URL": ""}, component="launcher")
        assert launcher.redis_url == ""
    finally:
        stand_in.kill()
        stand_in.wait()
    assert read_suite(tmp_path) is None


def test_a_suite_file_others_could_write_is_not_trusted(tmp_path):
    """The file hands every tool a Redis URL: one that another local user could have written is ignored."""
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "common.launcher"], stdout=subprocess.DEVNULL
    )
    try:
        _wait_for_exec(stand_in.pid, "common.launcher")
        path = write_suite(tmp_path, pid=stand_in.pid, redis_url="redis://:pw@127.0.0.1:6380/0", ports={})
        assert read_suite(tmp_path) is not None
        os.chmod(path, 0o666)
        assert read_suite(tmp_path) is None
        os.chmod(path, 0o600)
        os.chmod(tmp_path, 0o777)
        assert read_suite(tmp_path) is None
        os.chmod(tmp_path, 0o700)
        if os.getuid() == 0:  # only root can hand the file to another user (CI runs as root)
            os.chown(path, 65534, -1)
            assert read_suite(tmp_path) is None
    finally:
        stand_in.kill()
        stand_in.wait()
