"""docker-compose.yml is valid and describes the suite the README lists, on a bridge network.

No Docker engine is needed: ``docker-compose config`` only parses and
validates the file (Debian's docker-compose package, installed by
``make test``).  What the containers would be given is then checked with
the suite's own settings and a dev issuer built from it.
"""

import base64
import shutil
import subprocess

import pytest

from common.config import load_settings
from tests.support import ROOT

#: The issuer identifier the browser and the containers share (a network alias; RFC 6761 §6.3).
COMPOSE_ISSUER = "http://issuer.localhost:9000/oauth2/default"

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
    assert "redis-cli -p 6379 ping | grep -q PONG" in config
    # Every app reaches it with the password, and no Redis URL goes without it.
    assert config.count("REDIS_URL: redis://:from-dot-env-0123456789@redis:6379/0") == len(EXPECTED) - 1
    assert config.count("REDIS_URL:") == len(EXPECTED) - 1


def _config(compose) -> str:
    result = subprocess.run(
        [compose, "-f", "docker-compose.yml", "config"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _services(config: str) -> dict[str, dict[str, list[str]]]:
    """``docker-compose config`` output as service -> section -> its lines (enough for these checks)."""
    services: dict[str, dict[str, list[str]]] = {}
    section = None
    inside = False
    for line in config.splitlines():
        if not line.startswith(" "):
            inside = line == "services:"
            continue
        if not inside:
            continue
        if line.startswith("  ") and not line.startswith("   "):
            current = services.setdefault(line.strip().rstrip(":"), {})
        elif line.startswith("    ") and not line.startswith("     ") and not line.startswith("    -"):
            section = current.setdefault(line.strip().split(":")[0], [])
        else:
            section.append(line.strip())
    return services


def _environment(service: dict[str, list[str]]) -> dict[str, str]:
    pairs = (line.split(": ", 1) for line in service["environment"])
    return {key: value.strip("'\"") for key, value in pairs}


def test_compose_uses_a_bridge_network_and_one_issuer_name_for_browser_and_containers(compose):
    """No host networking; issuer.localhost and api.localhost are network aliases; ports on loopback."""
    config = _config(compose)
    services = _services(config)
    assert "network_mode" not in config and "driver: bridge" in config
    assert services["dev_issuer"]["networks"][:2] == ["suite:", "aliases:"]
    assert "- issuer.localhost" in services["dev_issuer"]["networks"]
    assert "- api.localhost" in services["resource_server"]["networks"]
    assert "ports" not in services["redis"]  # only the containers reach Redis
    for name in EXPECTED - {"redis"}:
        env = _environment(services[name])
        assert env["ISSUER"] == COMPOSE_ISSUER and env["API_URL"] == "http://api.localhost:5005", name
        assert env["TRUSTED_PROXIES"] == "0", name
        (published,) = services[name]["ports"]
        assert published.startswith("- 127.0.0.1:"), (name, published)
        # It listens where the published port leads (*_BIND), on every interface of its container.
        binds = {key: value for key, value in env.items() if key.endswith("_BIND")}
        assert list(binds.values()) == [f"0.0.0.0:{published.split(':')[2].removesuffix('/tcp')}"], (
            name,
            binds,
        )
        assert f"--bind $${next(iter(binds))}" in " ".join(services[name]["command"]), name


def test_every_container_would_start_with_its_compose_settings(compose):
    """Each app's settings from compose load (http to *.localhost is local, RFC 6761 §6.3)."""
    services = _services(_config(compose))
    components = {
        "dev_issuer": "dev_issuer",
        "resource_server": "resource_server",
        "web_app": "web_app",
        "spa_app": "spa_app",
        "service_app": "service_app",
    }
    for name, component in components.items():
        env = {k: v for k, v in _environment(services[name]).items() if k != "AUTHLIB_INSECURE_TRANSPORT"}
        settings = load_settings(env, component=component)
        assert settings.issuer == COMPOSE_ISSUER


def test_the_compose_issuer_serves_tokens_at_issuer_localhost(compose, redis_server, monkeypatch):
    """The dev issuer as compose runs it answers under issuer.localhost:9000, and only there."""
    from dev_issuer import create_app

    env = _environment(_services(_config(compose))["dev_issuer"])
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", env.pop("AUTHLIB_INSECURE_TRANSPORT"))
    app = create_app({**env, "REDIS_URL": redis_server.url, "TESTING": True})
    client = app.test_client()
    metadata = client.get(
        "/oauth2/default/.well-known/openid-configuration", base_url="http://issuer.localhost:9000"
    )
    assert metadata.status_code == 200 and metadata.json["issuer"] == COMPOSE_ISSUER
    settings = load_settings(env, component="dev_issuer")
    basic = base64.b64encode(
        f"{settings.service_client_id}:{settings.service_client_secret}".encode()
    ).decode()
    token = client.post(
        "/oauth2/default/v1/token",
        base_url="http://issuer.localhost:9000",
        data={"grant_type": "client_credentials", "scope": settings.service_scope},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert token.status_code == 200, token.get_data(as_text=True)
    refused = client.get("/oauth2/default/.well-known/openid-configuration", base_url="http://localhost:9000")
    assert refused.status_code == 400
