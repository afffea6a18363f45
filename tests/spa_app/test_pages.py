"""The pages as a tab shows them: the SPA's title once, and the suite's favicon (served without Redis)."""

from __future__ import annotations

import re

import pytest

from tests.support import addressed_client, free_port


@pytest.fixture
def spa_client():
    from spa_app import create_app

    app = create_app(
        {
            "TESTING": True,
            "ISSUER": "https://issuer.test/oauth2/default",
            "API_URL": "https://api.test",
            "SPA_BASE_URL": "https://spa.test",
            "SPA_CLIENT_ID": "spa-client-123",
        }
    )
    return addressed_client(app)


def test_the_spa_tab_title_names_the_app_once(spa_client):
    html = spa_client.get("/").get_data(as_text=True)
    assert re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip() == "Single-page app"


def test_the_page_links_a_favicon_that_is_served(spa_client):
    html = spa_client.get("/").get_data(as_text=True)
    link = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">', html)
    assert link, html[:1000]
    icon = spa_client.get(link.group(1))
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.get_data(as_text=True).startswith("<svg")


def test_the_favicon_needs_no_redis(suite_env):
    """An app whose Redis is down still serves its favicon (the 503 page links it)."""
    from web_app import create_app

    app = create_app({**suite_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "TESTING": True})
    client = app.test_client()
    client.set_cookie("web_app_session", "a-session-id")  # so the page must ask Redis
    page = client.get("/", base_url=suite_env["WEB_BASE_URL"])
    assert page.status_code == 503 and 'rel="icon"' in page.get_data(as_text=True)
    icon = client.get("/_common/static/favicon.svg", base_url=suite_env["WEB_BASE_URL"])
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
