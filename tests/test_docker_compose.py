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
