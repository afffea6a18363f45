"""The pieces an app factory composes (common.web, common.errors), and the former all-in-one base app."""

from __future__ import annotations

import pytest
from flask import Flask, jsonify, make_response

from common.config import load_settings
from common.errors import FlowError, init_error_pages
from common.web import (
    default_csp,
    init_health,
    init_security_headers,
    init_settings,
    init_templates,
    settings_of,
)


def piece_app(component="spa_app", *, answer="html", test_config=None, **headers) -> Flask:
    """An app made of the pieces, with a few routes of its own."""
    settings = load_settings(test_config, component=component)
    app = Flask(__name__)
    init_settings(
        app, settings, app_name="demo_app", base_url="http://localhost:5996", test_config=test_config
    )
    init_templates(app, title="Demo")
    init_error_pages(app, answer=answer)
    init_security_headers(app, **headers)
    init_health(app)

    @app.get("/")
    def home():
        return "home"

    @app.get("/login/callback")
    def callback():
        return "callback"

    @app.get("/own-csp")
    def own_csp():
        response = make_response("mine")
        response.headers["Content-Security-Policy"] = "default-src 'none'"
        return response

    @app.get("/flow-error")
    def flow_error():
        raise FlowError("temporarily_unavailable", "The issuer did not answer.", "Try again.", status=503)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    return app


# -- init_settings ---------------------------------------------------------------------------------------


def test_init_settings_attaches_the_components_settings_and_flask_keys():
    app = piece_app("web_app", test_config={"WEB_BASE_URL": "http://localhost:5998", "MY_FLAG": "on"})
    settings = settings_of(app)
    assert settings.component == "web_app" and settings.web_base_url == "http://localhost:5998"
    assert app.config["SECRET_KEY"] == settings.secret_key
    assert app.config["MY_FLAG"] == "on"  # a Flask key of the test config
    assert "WEB_BASE_URL" not in app.config  # a setting, read through settings_of only
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024


def test_a_component_without_a_secret_key_gets_none():
    assert piece_app("resource_server").config["SECRET_KEY"] is None


# -- security headers --------------------------------------------------------------------------------------


def test_the_csp_is_the_parameter_whatever_the_order_of_hooks():
    app = piece_app(csp="default-src 'none'; frame-ancestors 'none'")

    @app.after_request
    def registered_later(response):
        response.headers["X-Later"] = "1"
        return response

    response = app.test_client().get("/")
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # A view that set its own policy keeps it.
    assert app.test_client().get("/own-csp").headers["Content-Security-Policy"] == "default-src 'none'"


def test_the_default_csp_allows_forms_to_the_given_origin():
    client = piece_app(csp=default_csp(form_action="https://issuer.test")).test_client()
    assert "form-action 'self' https://issuer.test;" in client.get("/").headers["Content-Security-Policy"]
    assert "form-action 'self';" in piece_app().test_client().get("/").headers["Content-Security-Policy"]


def test_no_store_on_callbacks_or_on_every_page_but_static_files():
    callbacks = piece_app().test_client()
    assert "Cache-Control" not in callbacks.get("/").headers
    assert callbacks.get("/login/callback?code=c").headers["Cache-Control"] == "no-store"
    pages = piece_app(no_store="pages").test_client()
    assert pages.get("/").headers["Cache-Control"] == "no-store"
    assert pages.get("/healthz").headers["Cache-Control"] == "no-store"
    assert "no-store" not in pages.get("/_common/static/style.css").headers.get("Cache-Control", "")


def test_unknown_choices_are_refused():
    with pytest.raises(ValueError, match="no_store"):
        piece_app(no_store="sometimes")
    with pytest.raises(ValueError, match="answer"):
        piece_app(answer="xml")


# -- error pages -----------------------------------------------------------------------------------------


def test_html_app_answers_people_with_a_page_and_programs_with_json():
    client = piece_app().test_client()
    page = client.get("/nope", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert 'id="error-code">not_found<' in page.get_data(as_text=True)
    program = client.get("/nope", headers={"Accept": "application/json"})
    assert program.status_code == 404 and program.get_json()["error"] == "not_found"


def test_json_app_answers_json_to_everyone_and_keeps_allow_on_405():
    client = piece_app(answer="json").test_client()
    page = client.get("/nope", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.get_json()["error"] == "not_found"
    not_allowed = client.post("/", headers={"Accept": "text/html"})
    assert not_allowed.status_code == 405 and "GET" in not_allowed.headers["Allow"]
    assert not_allowed.get_json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("answer", ["html", "json"])
def test_a_503_says_when_to_retry_and_a_500_shows_no_detail(answer):
    client = piece_app(answer=answer).test_client()
    unavailable = client.get("/flow-error")
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "5"
    assert "The issuer did not answer." in unavailable.get_data(as_text=True)
    boom = client.get("/boom")
    assert boom.status_code == 500
    body = boom.get_data(as_text=True)
    assert "secret detail" not in body and "Traceback" not in body
    if answer == "json":
        assert boom.get_json()["error"] == "server_error"


# -- /healthz ----------------------------------------------------------------------------------------------


def test_healthz_is_there_without_a_session():
    response = piece_app().test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers


def test_healthz_registered_first_answers_even_if_the_app_defines_one():
    app = piece_app()
    app.add_url_rule("/healthz", "healthz", lambda: jsonify(status="mine"))
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}
