"""docker-compose.yml is valid and describes the suite the README lists.

No Docker engine is needed: ``docker-compose config`` only parses and
validates the file (Debian's docker-compose package, installed by
``make test``).
"""

import shutil
import subprocess

import pytest

from tests.support import ROOT

EXPECTED = {"redis", "dev_issuer", "resource_server", "web_app", "spa_app", "service_app"}


@pytest.fixture(scope="module")
def compose():
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (make test installs Debian's docker-compose)"
    return binary


def test_compose_file_validates(compose):
    result = subprocess.run(
        [compose, "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_every_component_with_healthchecks(compose):
    result = subprocess.run(
        [compose, "-f", "docker-compose.yml", "config", "--services"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == EXPECTED
    config = subprocess.run(
        [compose, "-f", "docker-compose.yml", "config"], cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout
    # Every service but Redis waits for what it needs to be healthy.
    assert config.count("condition: service_healthy") == 8
    assert config.count("healthcheck:") == len(EXPECTED)


def test_compose_redis_asks_for_the_password_from_env(compose, tmp_path):
    """The compose Redis has requirepass; REDIS_PASSWORD comes from .env and reaches every app's REDIS_URL."""
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_PASSWORD=from-dot-env-0123456789\n")
    result = subprocess.run(
        [compose, "--env-file", str(env_file), "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config = result.stdout
    assert "requirepass" in config
    assert "REDIS_PASSWORD: from-dot-env-0123456789" in config
    # The healthcheck authenticates (REDISCLI_AUTH) and wants PONG, not just any answer.
    assert "REDISCLI_AUTH: from-dot-env-0123456789" in config
    assert "redis-cli -p 6380 ping | grep -q PONG" in config
    # Every app reaches it with the password, and no Redis URL goes without it.
    assert config.count("REDIS_URL: redis://:from-dot-env-0123456789@127.0.0.1:6380/0") == len(EXPECTED) - 1
    assert config.count("REDIS_URL:") == len(EXPECTED) - 1
