"""common/config.py: defaults, precedence and one-line errors naming the variable."""

import pytest

from common import config
from common.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No developer .env or environment leaks into these tests."""
    for name in config.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)


def test_defaults_run_against_the_dev_issuer():
    settings = load_settings()
    assert settings.issuer == "http://localhost:9000/oauth2/default"
    assert settings.uses_dev_issuer
    assert settings.issuer_base_url == "http://localhost:9000"
    assert settings.web_redirect_uri == "http://localhost:5001/authorization-code/callback"
    assert settings.spa_redirect_uri == "http://localhost:5002/login/callback"
    assert settings.native_redirect_uri() == "http://127.0.0.1:5003/callback"
    assert settings.native_redirect_uri(49152) == "http://127.0.0.1:49152/callback"
    assert settings.api_audience == "api://default"
    assert settings.service_scope == "customScope"
    # Development secrets say what they are.
    assert "dev" in settings.web_client_secret and "do-not-use" in settings.web_client_secret


def test_precedence_env_file_then_environment_then_overrides(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("WEB_BASE_URL=http://localhost:7001\nSPA_BASE_URL=http://localhost:7002\n")
    monkeypatch.setenv("SPA_BASE_URL", "http://localhost:8002")
    settings = load_settings({"API_URL": "http://localhost:8005"})
    assert settings.web_base_url == "http://localhost:7001"  # from .env
    assert settings.spa_base_url == "http://localhost:8002"  # environment beats .env
    assert settings.api_url == "http://localhost:8005"  # test_config beats both


def test_unknown_override_keys_are_ignored():
    assert load_settings({"TESTING": True, "NOT_A_SETTING": "x"}).issuer == config.DEV_ISSUER_DEFAULT


@pytest.mark.parametrize(
    ("overrides", "variable", "fragment"),
    [
        ({"ISSUER": "https://{yourOktaDomain}/oauth2/default"}, "ISSUER", "placeholder"),
        ({"ISSUER": "dev-123.okta.com/oauth2/default"}, "ISSUER", "not an http(s) URL"),
        ({"ISSUER": "http://dev-123.okta.com/oauth2/default"}, "ISSUER", "plain http"),
        ({"WEB_BASE_URL": "http://localhost:5001/app"}, "WEB_BASE_URL", "has a path"),
        ({"WEB_BASE_URL": "http://localhost:99999"}, "WEB_BASE_URL", "invalid port"),
        ({"WEB_CLIENT_SECRET": ""}, "WEB_CLIENT_SECRET", "is empty"),
        ({"WEB_CLIENT_ID": "{clientId}"}, "WEB_CLIENT_ID", "placeholder"),
        ({"NATIVE_REDIRECT_PORT": "abc"}, "NATIVE_REDIRECT_PORT", "not a whole number"),
        ({"NATIVE_REDIRECT_PORT": "70000"}, "NATIVE_REDIRECT_PORT", "out of range"),
        ({"SERVICE_SCOPE": "openid customScope"}, "SERVICE_SCOPE", "openid"),
        ({"SERVICE_PRIVATE_KEY": "/nonexistent/key.pem"}, "SERVICE_PRIVATE_KEY", "not a readable file"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL", "not a Redis URL"),
        ({"TRUSTED_MODE": "maybe"}, "TRUSTED_MODE", "yes/no"),
        ({"API_VALIDATION": "introspection"}, "API_INTROSPECTION_CLIENT_ID", "is empty"),
        ({"DEV_ISSUER_EXTRA_USERS": "nobody"}, "DEV_ISSUER_EXTRA_USERS", "username:password"),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_variable(overrides, variable, fragment):
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides)
    message = str(caught.value)
    assert caught.value.variable == variable
    assert message.startswith(f"{variable}: ")
    assert fragment in message
    assert "\n" not in message


def test_service_secret_may_be_empty_when_a_private_key_is_set(tmp_path):
    key = tmp_path / "service.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    settings = load_settings({"SERVICE_CLIENT_SECRET": "", "SERVICE_PRIVATE_KEY": str(key)})
    assert settings.service_private_key == str(key)
    with pytest.raises(ConfigError, match="SERVICE_CLIENT_SECRET"):
        load_settings({"SERVICE_CLIENT_SECRET": ""})


def test_https_issuer_and_trailing_slash_are_kept_exactly():
    # iss is compared as an exact string (OIDC Core 3.1.3.7 step 2): never normalised.
    settings = load_settings({"ISSUER": "https://tenant.example.com/"})
    assert settings.issuer == "https://tenant.example.com/"
    assert not settings.uses_dev_issuer


def test_settings_round_trip_through_the_environment():
    settings = load_settings({"DEV_ISSUER_EXTRA_USERS": "a@example.test:one,b@example.test:two", "TRUSTED_MODE": "yes"})
    assert load_settings(settings.as_environ()) == settings


def test_launcher_check_reports_the_bad_variable(monkeypatch, capsys):
    from common import launcher

    monkeypatch.setenv("ISSUER", "https://{yourOktaDomain}/oauth2/default")
    assert launcher.main(["--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("configuration error: ISSUER:")
    assert len(err.splitlines()) == 1


def test_trusted_mode_auto_is_on_only_against_the_dev_issuer():
    # The password grant is off unless enabled (RFC 9700 §2.4); "auto" turns
    # it on for the bundled dev issuer so the walkthrough runs after `make run`.
    assert load_settings().trusted_mode is True
    assert load_settings({"ISSUER": "https://dev-123456.okta.com/oauth2/default"}).trusted_mode is False
    assert load_settings({"ISSUER": "https://dev-123456.okta.com/oauth2/default", "TRUSTED_MODE": "true"}).trusted_mode


def test_secrets_may_contain_characters_that_look_like_placeholders():
    # Only ids and URLs are checked for copy-paste placeholders.
    assert load_settings({"WEB_CLIENT_SECRET": "a<b>{c}...d"}).web_client_secret == "a<b>{c}...d"
    with pytest.raises(ConfigError, match="WEB_CLIENT_ID"):
        load_settings({"WEB_CLIENT_ID": "{yourClientId}"})
