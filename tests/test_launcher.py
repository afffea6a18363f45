"""`make run`'s launcher: embedded Redis, every component healthy, Ctrl-C stops all.

Runs the real launcher as a subprocess with its ports moved to free ones,
exactly as a user would run it, and checks what a user sees.
"""

import os
import pty
import select
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import redis
import requests

from common.embedded_redis import port_free, shown
from tests.support import ROOT, free_port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _launcher_env(instance) -> tuple[dict[str, int], dict[str, str]]:
    """Every component on a free port, the suite's files in ``instance`` (INSTANCE_DIR)."""
    ports = {name: free_port() for name in ("issuer", "web", "spa", "service", "api")}
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "ISSUER"}}
    env.update(
        {
            "ISSUER": f"http://localhost:{ports['issuer']}/oauth2/default",
            "WEB_BASE_URL": f"http://localhost:{ports['web']}",
            "SPA_BASE_URL": f"http://localhost:{ports['spa']}",
            "SERVICE_BASE_URL": f"http://localhost:{ports['service']}",
            "API_URL": f"http://localhost:{ports['api']}",
            "INSTANCE_DIR": str(instance),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return ports, env


def _launch(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "common.launcher"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _read_until_up(proc: subprocess.Popen) -> str:
    output = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        if "stops everything" in line:
            break
    return "".join(output)


def _wait_or_stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    """The launcher's exit code once it stops; if it does not, SIGTERM it (it stops what it started)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the launcher did not stop") from None


def _run(env, *argv, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("how", ["ctrl-c", "make-stop"])
def test_launcher_starts_the_suite_and_stops_everything(tmp_path, how):
    ports, env = _launcher_env(tmp_path)
    proc = _launch(env)
    try:
        text = _read_until_up(proc)
        assert "The suite is up" in text, text[-3000:]
        assert "started an embedded Redis" in text
        assert "Demo user: testuser1@example.com" in text
        redis_port = int(text.split("redis://:***@127.0.0.1:")[1].split("/")[0])
        assert _listening(redis_port)
        # Every component that `make run` prints answers.
        for name in ("issuer", "api", "web", "spa", "service"):
            if f":{ports[name]}" in text:
                assert _listening(ports[name]), name
        discovery = requests.get(f"{env['ISSUER']}/.well-known/openid-configuration", timeout=5).json()
        assert discovery["issuer"] == env["ISSUER"]
        # The embedded Redis keeps its files where it was told to.
        assert (tmp_path / "redis").is_dir()
        # Its password is in a file only the user can read, and never printed.
        password = (tmp_path / "redis-password").read_text().strip()
        assert stat.S_IMODE((tmp_path / "redis-password").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "suite.json").stat().st_mode) == 0o600
        assert password not in text
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=redis_port, socket_timeout=2).ping()
        assert redis.Redis(port=redis_port, password=password, socket_timeout=2).ping()
    finally:
        stopped = None
        if how == "ctrl-c":
            # Ctrl-C in a terminal signals the whole foreground process group.
            os.killpg(proc.pid, signal.SIGINT)
        else:
            # `make stop`, from another terminal: it signals the launcher alone.
            stopped = _run(env, "-m", "common.launcher", "--stop")
        code = _wait_or_stop(proc)
    if stopped is not None:
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"stopped the suite (PID {proc.pid})" in stopped.stdout
    rest = proc.stdout.read()
    # A stop the user asked for is a success: `make run` ends without "Error 143".
    assert code == 0, rest[-2000:]
    assert "embedded Redis stopped" in rest
    assert not (tmp_path / "suite.json").exists()
    assert not _listening(redis_port)
    for port in ports.values():
        assert not _listening(port)


def test_command_line_tools_find_the_running_suite_and_a_second_suite_is_refused(tmp_path):
    ports, env = _launcher_env(tmp_path)
    proc = _launch(env)
    try:
        text = _read_until_up(proc)
        assert "The suite is up" in text, text[-3000:]
        # Without REDIS_URL, `flask --app dev_issuer rotate-keys` uses the running suite's Redis.
        rotated = _run(env, "-m", "flask", "--app", "dev_issuer", "rotate-keys")
        assert rotated.returncode == 0, rotated.stderr
        assert "now signing with:" in rotated.stdout
        jwks = requests.get(f"http://localhost:{ports['issuer']}/oauth2/default/v1/keys", timeout=5).json()
        current = rotated.stdout.split("now signing with:")[1].split()[0]
        assert current in {key["kid"] for key in jwks["keys"]}

        # A second `make run` from the same checkout: one line, nothing started.
        _, other_env = _launcher_env(tmp_path)
        second = _run(other_env, "-m", "common.launcher", timeout=30)
        assert second.returncode == 1
        assert second.stderr.strip() == (
            f"launcher: a suite is already running from this checkout (PID {proc.pid}): `make stop` stops it"
        )
        assert "healthy" not in second.stdout
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _wait_or_stop(proc)


def test_a_busy_port_stops_the_launcher_before_anything_starts(tmp_path):
    ports, env = _launcher_env(tmp_path)
    with socket.socket() as squatter:  # another suite's web app, say
        squatter.bind(("127.0.0.1", ports["web"]))
        squatter.listen()
        result = _run(env, "-m", "common.launcher", timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"launcher: port {ports['web']} (web, from WEB_BASE_URL) is already in use: another suite is "
        f"running? `make stop` (or stop what listens on {ports['web']}, or move WEB_BASE_URL to another port)"
    )
    assert "healthy" not in result.stdout and "The suite is up" not in result.stdout
    assert not (tmp_path / "redis").exists()  # no Redis was started
    for name, port in ports.items():
        if name != "web":
            assert not _listening(port)


def test_servers_listen_on_their_bind_addresses_not_on_the_public_ports(tmp_path):
    """*_BIND: the web app and the API listen where they are told; the table still shows the public URLs."""
    ports, env = _launcher_env(tmp_path)
    binds = {"web": free_port(), "api": free_port()}
    env.update(WEB_BIND=f"127.0.0.1:{binds['web']}", API_BIND=f"127.0.0.1:{binds['api']}")
    proc = _launch(env)
    try:
        text = _read_until_up(proc)
        assert "The suite is up" in text, text[-3000:]
        assert f"http://localhost:{ports['web']}" in text  # where a proxy in front would take the browser
        for name, port in binds.items():
            assert _listening(port), name
            assert not _listening(ports[name]), name
        health = requests.get(f"http://127.0.0.1:{binds['web']}/healthz", timeout=5)
        assert health.status_code == 200
        # The bind address is not a public name: pages there are refused, health answers.
        refused = requests.get(f"http://127.0.0.1:{binds['web']}/", headers={"Host": "web.test"}, timeout=5)
        assert refused.status_code == 400
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _wait_or_stop(proc)


def test_a_busy_bind_address_is_named_by_its_variable(tmp_path):
    ports, env = _launcher_env(tmp_path)
    taken = free_port()
    env["WEB_BIND"] = f"127.0.0.1:{taken}"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        result = _run(env, "-m", "common.launcher", timeout=30)
    assert result.returncode == 1
    assert f"port {taken} (web, from WEB_BIND) is already in use" in result.stderr


def test_run_https_sets_https_urls_binds_and_one_trusted_proxy():
    """`make run-https` on the defaults: https public URLs, servers where `make run` has them."""
    from common.config import DEFAULTS
    from common.tls_front import https_environment

    changes = https_environment(dict(DEFAULTS), DEFAULTS)
    assert changes["ISSUER"] == "https://localhost:8443/oauth2/default"
    assert changes["WEB_BASE_URL"] == "https://localhost:8441"
    assert changes["WEB_BIND"] == "127.0.0.1:5001" and changes["ISSUER_BIND"] == "127.0.0.1:9000"
    assert changes["TRUSTED_PROXIES"] == "1"
    # What you set yourself is kept.
    mine = {**DEFAULTS, "WEB_BASE_URL": "https://web.example.test", "WEB_BIND": "10.0.0.5:8000"}
    kept = https_environment(mine, DEFAULTS)
    assert "WEB_BASE_URL" not in kept and "WEB_BIND" not in kept


def test_a_port_in_time_wait_is_free_for_the_embedded_redis():
    """A quick restart leaves the last connections in TIME_WAIT: the port must not count as taken."""
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first, so its end goes to TIME_WAIT
        client.recv(1)
        client.close()
    # The lingering connection is there: a probe without SO_REUSEADDR (the old one) calls the port taken.
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert port_free(port)


def test_the_printed_redis_url_hides_the_password():
    assert shown("redis://:s3cret@127.0.0.1:6380/0") == "redis://:***@127.0.0.1:6380/0"
    assert shown("redis://127.0.0.1:6380/0") == "redis://127.0.0.1:6380/0"


def test_command_line_tools_without_a_suite_answer_in_one_line(tmp_path):
    env = {**os.environ, "INSTANCE_DIR": str(tmp_path), "REDIS_URL": ""}
    no_suite = _run(env, "-m", "flask", "--app", "dev_issuer", "rotate-keys")
    assert no_suite.returncode == 2
    assert "Traceback" not in no_suite.stderr
    assert no_suite.stderr.strip().splitlines() == [
        "Error: REDIS_URL: is not set for a process that keeps sessions. Start the suite with `make run` "
        "(it starts an embedded Redis) or set REDIS_URL=redis://localhost:6379/0"
    ]
    down = _run(
        {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
        "-m",
        "flask",
        "--app",
        "dev_issuer",
        "rotate-keys",
    )
    assert down.returncode == 1
    assert "Traceback" not in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
    assert down.stderr.startswith("Error: cannot reach the dev issuer's Redis (")
    assert "Is the suite running? Start it with `make run`" in down.stderr


def test_make_stop_without_a_suite(tmp_path):
    env = {**os.environ, "INSTANCE_DIR": str(tmp_path)}
    result = _run(env, "-m", "common.launcher", "--stop")
    assert result.returncode == 0
    assert "no suite is running from this checkout" in result.stdout


@pytest.mark.parametrize(
    "issuer", ["https://dev-123456.okta.com/oauth2/default/", "http://localhost:9000/oauth2/default/"]
)
def test_check_config_warns_about_a_trailing_slash_in_the_issuer(issuer):
    env = {**os.environ, "ISSUER": issuer}
    result = _run(env, "-m", "common.launcher", "--check")
    assert result.returncode == 0
    assert result.stdout.strip() == "configuration OK"
    assert result.stderr.strip().splitlines() == [
        f"launcher: warning: ISSUER {issuer!r} ends with '/': it must match the issuer's discovery document "
        "exactly, which for Okta and most issuers has none, e.g. https://dev-123456.okta.com/oauth2/default"
    ]


def test_check_config_says_nothing_about_a_well_formed_issuer():
    env = {**os.environ, "ISSUER": "https://dev-123456.okta.com/oauth2/default"}
    result = _run(env, "-m", "common.launcher", "--check")
    assert result.returncode == 0 and result.stderr == ""


def test_ctrl_c_in_make_run_stops_without_make_reporting_an_error(tmp_path):
    """What a user sees in the terminal: the table, Ctrl-C, the stop lines, and no `make: *** ... Error`."""
    _, env = _launcher_env(tmp_path)
    pid, terminal = pty.fork()
    if pid == 0:  # the child: `make run` on a terminal of its own, as a user types it
        os.chdir(ROOT)
        # -o: the virtualenv is there already; the test never re-installs it.
        os.execvpe("make", ["make", "-o", ".venv/.requirements-installed", "run"], env)
    shown, interrupted = b"", False
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # EIO: make has ended and the terminal is closed
                break
            if not chunk:
                break
            shown += chunk
            if not interrupted and b"stops everything" in shown:
                os.write(terminal, b"\x03")  # Ctrl-C, through the terminal
                interrupted = True
    finally:
        if not interrupted:  # never up: Ctrl-C all the same, so the launcher stops what it started
            os.write(terminal, b"\x03")
        _drain_and_reap(pid, terminal)
    text = shown.decode(errors="replace")
    lines = [line for line in text.splitlines() if "|" not in line]  # without honcho's log lines
    assert interrupted, "\n".join(lines[-30:])
    assert "launcher: embedded Redis stopped" in text, "\n".join(lines[-30:])
    assert "make: ***" not in text, "\n".join(lines[-30:])


def _drain_and_reap(pid: int, terminal: int, timeout: float = 30) -> None:
    """Read the terminal until make has ended (at most ``timeout`` s, then SIGKILL), and reap it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            break
        if select.select([terminal], [], [], 0.2)[0]:
            try:
                os.read(terminal, 65536)
            except OSError:
                pass
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(terminal)


def test_make_stop_signals_the_launcher():
    """`make stop` is the launcher's --stop (the suite of this checkout, started in another terminal)."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.requirements-installed", "stop"],
        cwd=ROOT,
        # Run by `make test`, the outer make's MAKEFLAGS would reach this one.
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip().splitlines()[-1] == ".venv/bin/python -m common.launcher --stop"
