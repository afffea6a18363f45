"""create_base_app's own duties: settings loaded once, /healthz, no clash with an app's own routes."""

from __future__ import annotations

from unittest import mock

from flask import jsonify

import common.web
from common.web import create_base_app, settings_of


def test_base_url_from_the_settings_loads_them_once():
    with mock.patch.object(common.web, "load_settings", wraps=common.web.load_settings) as load:
        app = create_base_app(__name__, "demo_app", title="Demo", base_url=lambda s: s.web_base_url,
                              test_config={"WEB_BASE_URL": "http://localhost:5998"}, with_session=False)
    assert load.call_count == 1
    assert app.config["BASE_URL"] == "http://localhost:5998" == settings_of(app).web_base_url


def test_plain_base_url_still_works():
    app = create_base_app(__name__, "demo_app", title="Demo", base_url="http://localhost:5997", with_session=False)
    assert app.config["BASE_URL"] == "http://localhost:5997"
    assert create_base_app(__name__, "api", title="API", base_url=None, with_session=False).config["BASE_URL"] is None


def test_healthz_is_there_without_a_session():
    client = create_base_app(__name__, "demo_app", title="Demo", base_url=None, with_session=False).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers


def test_an_app_that_still_defines_healthz_does_not_clash():
    """spa_app, resource_server and dev_issuer have their own (identical) /healthz for now."""
    app = create_base_app(__name__, "demo_app", title="Demo", base_url=None, with_session=False)
    app.add_url_rule("/healthz", "healthz", lambda: jsonify(status="mine"))
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}
