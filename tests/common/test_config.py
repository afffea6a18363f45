"""common/config.py: defaults, precedence and one-line errors naming the variable."""

import re
from pathlib import Path

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
    settings = load_settings(
        {"DEV_ISSUER_EXTRA_USERS": "a@example.test:one,b@example.test:two", "TRUSTED_MODE": "yes"}
    )
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
    okta = "https://dev-123456.okta.com/oauth2/default"
    assert load_settings({"ISSUER": okta, "TRUSTED_MODE": "true"}).trusted_mode


def test_secrets_may_contain_characters_that_look_like_placeholders():
    # Only ids and URLs are checked for copy-paste placeholders.
    assert load_settings({"WEB_CLIENT_SECRET": "a<b>{c}...d"}).web_client_secret == "a<b>{c}...d"
    with pytest.raises(ConfigError, match="WEB_CLIENT_ID"):
        load_settings({"WEB_CLIENT_ID": "{yourClientId}"})


# -- settings per component ---------------------------------------------------------------------------------

#: A value each variable's check refuses (``None``: every value is acceptable).
BROKEN = {
    "ISSUER": "https://{yourOktaDomain}/oauth2/default",
    "REDIS_URL": "http://localhost:6379",
    "INSTANCE_DIR": "{a file}",  # replaced by a file's path in the fixture
    "SECRET_KEY": "",
    "WEB_CLIENT_ID": "{clientId}",
    "WEB_CLIENT_SECRET": "",
    "WEB_BASE_URL": "http://localhost:5001/app",
    "SPA_CLIENT_ID": "<spa client id>",
    "SPA_BASE_URL": "ftp://localhost:5002",
    "SPA_BFF_CLIENT_ID": "{clientId}",
    "SPA_BFF_CLIENT_SECRET": "",
    "NATIVE_CLIENT_ID": "",
    "NATIVE_REDIRECT_PORT": "abc",
    "NATIVE_TOKEN_DIR": "{a file}",  # replaced by a file's path in the fixture
    "TRUSTED_CLIENT_ID": "",
    "TRUSTED_CLIENT_SECRET": "",
    "TRUSTED_MODE": "maybe",
    "SERVICE_CLIENT_ID": "",
    "SERVICE_CLIENT_SECRET": "",
    "SERVICE_PRIVATE_KEY": "/nonexistent/key.pem",
    "SERVICE_SCOPE": "openid",
    "SERVICE_BASE_URL": "http://service.example.com",
    "API_URL": "localhost:5005",
    "API_AUDIENCE": "",
    "API_VALIDATION": "both",
    "API_INTROSPECTION_CLIENT_ID": "{introspector}",
    "API_INTROSPECTION_CLIENT_SECRET": None,
    "DEMO_USERNAME": "",
    "DEMO_PASSWORD": "",
    "HTTP_TIMEOUT": "0",
    "SESSION_LIFETIME": "1",
    "LOGIN_TIMEOUT": "soon",
    "CLOCK_LEEWAY": "-1",
    "DEV_ISSUER_CODE_LIFETIME": "0",
    "DEV_ISSUER_ACCESS_TOKEN_LIFETIME": "0",
    "DEV_ISSUER_REFRESH_TOKEN_LIFETIME": "0",
    "DEV_ISSUER_EXTRA_USERS": "nobody",
    "DPOP": "sometimes",
    "API_DPOP": "never",
    "API_DPOP_NONCE": "sometimes",
    "DEV_ISSUER_REQUIRE_DPOP": "{clientId}",
    "PAR": "maybe",
    "DEV_ISSUER_REQUIRE_PAR": "{clientId}",
    "DEV_ISSUER_PAR_LIFETIME": "0",
    "WEB_BIND": "localhost",
    "SPA_BIND": ":5002",
    "SERVICE_BIND": "localhost:0",
    "API_BIND": "localhost:http",
    "ISSUER_BIND": "127.0.0.1:70000",
    "TRUSTED_PROXIES": "-1",
    "DEV_ISSUER_DEVICE_CODE_LIFETIME": "0",
}


@pytest.fixture
def broken(tmp_path):
    """:data:`BROKEN`, with a real file where a directory is expected; the unbreakable left out."""
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    values = {**BROKEN, "NATIVE_TOKEN_DIR": str(a_file), "INSTANCE_DIR": str(a_file)}
    return {name: value for name, value in values.items() if value is not None}


def test_every_variable_has_one_row_with_a_broken_value_here():
    assert list(BROKEN) == [variable.name for variable in config.VARIABLES] == list(config.DEFAULTS)


def test_each_broken_value_is_refused_naming_its_variable(broken):
    for name, value in broken.items():
        with pytest.raises(ConfigError) as caught:
            load_settings({name: value})
        assert caught.value.variable == name


@pytest.mark.parametrize("component", config.COMPONENTS)
def test_a_component_loads_whatever_is_broken_in_variables_it_does_not_read(component, broken):
    others = {name: value for name, value in broken.items() if component not in config._BY_NAME[name].used_by}
    settings = load_settings(others, component=component)
    assert settings.component == component
    assert {row.name for row in config.variables_of(component)} == set(settings.as_environ())


def test_a_broken_service_private_key_stops_only_those_who_read_it():
    broken_key = {"SERVICE_PRIVATE_KEY": "/nonexistent/key.pem"}
    assert load_settings(broken_key, component="web_app").web_client_id == "dev-web-app"
    assert load_settings(broken_key, component="resource_server").service_scope == "customScope"
    for component in ("service_app", "dev_issuer", None):
        with pytest.raises(ConfigError) as caught:
            load_settings(broken_key, component=component)
        message = str(caught.value)
        assert message.startswith("SERVICE_PRIVATE_KEY: '/nonexistent/key.pem' is not a readable file")
        assert "\n" not in message


def test_reading_an_undeclared_variable_fails_loudly_naming_it():
    settings = load_settings(component="web_app")
    with pytest.raises(AttributeError, match="SERVICE_PRIVATE_KEY is not among web_app's settings"):
        _ = settings.service_private_key
    # A derived value fails the same way, naming the variable it needs.
    with pytest.raises(AttributeError, match="SPA_BASE_URL is not among web_app's settings"):
        _ = settings.spa_redirect_uri
    assert settings.web_redirect_uri == "http://localhost:5001/authorization-code/callback"
    assert settings.declares("WEB_CLIENT_SECRET") and not settings.declares("SERVICE_CLIENT_SECRET")


def test_settings_are_read_only_and_hide_secrets_in_repr():
    settings = load_settings(component="web_app")
    with pytest.raises(AttributeError):
        settings.issuer = "https://evil.test/"
    with pytest.raises(AttributeError):
        settings.anything_else = 1
    assert "do-not-use" not in repr(settings) and "dev-web-app" in repr(settings)


def test_component_settings_round_trip_and_compare():
    settings = load_settings({"WEB_BASE_URL": "http://localhost:7001"}, component="web_app")
    assert load_settings(settings.as_environ(), component="web_app") == settings
    assert load_settings(settings.as_environ(), component="spa_app") != settings
    assert hash(load_settings(component="launcher")) == hash(load_settings(component="launcher"))


def test_an_unknown_component_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown component 'web-app'"):
        load_settings(component="web-app")


def test_every_variable_is_documented_in_env_example():
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    for variable in config.VARIABLES:
        assert f"#{variable.name}=" in example, variable.name
        assert variable.doc and variable.used_by, variable.name


def test_the_launcher_checks_every_component_it_starts(monkeypatch, capsys):
    from common import launcher

    monkeypatch.setenv("SERVICE_PRIVATE_KEY", "/nonexistent/key.pem")
    assert launcher.main(["--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("configuration error: SERVICE_PRIVATE_KEY:")
    assert len(err.splitlines()) == 1


# -- every attribute a component's code reads is one it declares ---------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
#: Modules of common/ not shared by every caller of the issuer (web.py guards its reads with ``declares``).
#: ``par.py`` (RFC 9126) serves the browser sign-ins only: the web app, the BFF and the native app.
_NOT_SHARED = {"config.py", "launcher.py", "web.py", "session.py", "par.py", "dpop_client.py"}
#: The client apps' DPoP policy (reads DPOP, which only the client apps declare).
_DPOP_CLIENT = "common/dpop_client.py"
_SHARED = sorted(
    str(path.relative_to(ROOT)) for path in (ROOT / "common").rglob("*.py") if path.name not in _NOT_SHARED
)
#: component -> the source it runs (its package, and the shared code it calls).
SOURCES = {
    "web_app": ["web_app", *_SHARED, "common/session.py", "common/par.py", _DPOP_CLIENT],
    "spa_app": ["spa_app", "common/par.py", _DPOP_CLIENT],
    "native_sim": ["native_sim", *_SHARED, "common/par.py", _DPOP_CLIENT],
    "service_app": ["service_app", *_SHARED, "common/session.py", _DPOP_CLIENT],
    "resource_server": ["resource_server", *_SHARED],
    "dev_issuer": ["dev_issuer", "common/session.py"],
    "launcher": ["common/launcher.py"],
}
_READ = re.compile(r"\b(?:settings|settings_of\([^)]*\)|lambda s: s)\.([a-z_]+)")


def _reads(component: str) -> set[str]:
    names = set()
    for source in SOURCES[component]:
        path = ROOT / source
        for file in [path] if path.is_file() else [*path.rglob("*.py"), *path.rglob("*.html")]:
            names.update(_READ.findall(file.read_text()))
    return names & set(dir(config.Settings)) - {"as_environ", "declares", "component"}


@pytest.mark.parametrize("component", config.COMPONENTS)
def test_each_component_declares_every_setting_its_code_reads(component):
    settings = load_settings(component=component)
    for name in sorted(_reads(component)):
        value = getattr(settings, name)  # AttributeError names the missing variable
        if callable(value):
            value()


def test_a_malformed_redis_url_with_a_password_is_not_repeated_in_the_error():
    with pytest.raises(ConfigError) as info:
        load_settings({"REDIS_URL": "reddis://:s3cret-password@127.0.0.1:6380/0"}, component="web_app")
    assert "REDIS_URL" in str(info.value) and "s3cret-password" not in str(info.value)
