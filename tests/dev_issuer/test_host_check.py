"""Every issuer page and endpoint answers only under the issuer's own host and port (DNS rebinding).

A page on a rebinding host name reaches the issuer from the browser with the
peer address of this machine; its requests still say ``Host: rebind.test:PORT``.
The shared issuer of these tests is ``ISSUER=http://127.0.0.1:PORT/...``, so
``localhost:PORT`` (another name of the same machine) is refused too.
"""

from urllib.parse import urlsplit

import pytest
import requests

TIMEOUT = 10

#: Issuer paths under the issuer's prefix, and the issuer's own pages.
PROTOCOL_PATHS = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/v1/keys",
    "/v1/authorize?client_id=x",
    "/v1/userinfo",
    "/v1/logout",
]
PAGE_PATHS = ["/", "/admin/apps", "/admin/keys", "/signin", "/no-such-page"]


def origin_and_port(issuer):
    parts = urlsplit(issuer.url)
    return f"{parts.scheme}://{parts.netloc}", parts.port


def foreign_hosts(port: int) -> list[str]:
    return [f"rebind.test:{port}", f"localhost:{port}", f"127.0.0.1:{port + 1}", "rebind.test"]


def all_urls(issuer) -> list[str]:
    origin, _ = origin_and_port(issuer)
    prefix = urlsplit(issuer.url).path
    return [origin + prefix + path for path in PROTOCOL_PATHS] + [origin + path for path in PAGE_PATHS]


def assert_refused(response: requests.Response, host: str) -> None:
    assert response.status_code == 400, (response.url, host, response.status_code)
    assert "invalid_host" in response.text and "csrf_token" not in response.text
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("host_index", range(4))
def test_every_page_and_endpoint_refuses_another_host(issuer, host_index):
    _, port = origin_and_port(issuer)
    host = foreign_hosts(port)[host_index]
    for url in all_urls(issuer):
        assert_refused(
            requests.get(url, headers={"Host": host}, allow_redirects=False, timeout=TIMEOUT), host
        )
    token = requests.post(
        issuer.endpoint("token"),
        headers={"Host": host},
        data={"grant_type": "client_credentials"},
        auth=(issuer.settings.service_client_id, issuer.settings.service_client_secret),
        timeout=TIMEOUT,
    )
    assert_refused(token, host)
    assert "access_token" not in token.text


def test_own_host_is_served_and_health_answers_any_host(issuer):
    _, port = origin_and_port(issuer)
    for url in all_urls(issuer):
        response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code != 400 or "invalid_host" not in response.text, url
    assert requests.get(all_urls(issuer)[0], timeout=TIMEOUT).json()["issuer"] == issuer.url
    # Health checks reach the bind address whatever ISSUER says (docker-compose.yml).
    origin, _ = origin_and_port(issuer)
    for host in foreign_hosts(port):
        assert requests.get(origin + "/healthz", headers={"Host": host}, timeout=TIMEOUT).status_code == 200


def test_the_refusal_page_names_the_issuer_and_escapes_the_host(issuer):
    origin, _ = origin_and_port(issuer)
    refused = requests.get(origin + "/", headers={"Host": "rebind.test:1"}, timeout=TIMEOUT)
    assert refused.status_code == 400 and origin in refused.text and "(rebind.test:1)" in refused.text
    # A Host that is not a host name at all is refused and never echoed.
    markup = requests.get(origin + "/", headers={"Host": "<b>rebind</b>.test"}, timeout=TIMEOUT)
    assert markup.status_code == 400 and "invalid_host" in markup.text
    assert "<b>rebind" not in markup.text and "malformed Host" in markup.text
    as_json = requests.get(
        origin + "/", headers={"Host": "rebind.test", "Accept": "application/json"}, timeout=TIMEOUT
    )
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_host"


def test_a_rebinding_page_can_neither_read_the_csrf_token_nor_rotate_the_keys(second_issuer):
    """The attack of the report: read /admin/keys for its CSRF token, then post rotations."""
    issuer = second_issuer
    origin, port = origin_and_port(issuer)
    before = issuer.jwks()
    attacker = requests.Session()
    page = attacker.get(origin + "/admin/keys", headers={"Host": f"rebind.test:{port}"}, timeout=TIMEOUT)
    assert_refused(page, "rebind.test")
    # Even with a CSRF token of a real page (read by some other means), the rotation is refused.
    real = attacker.get(origin + "/admin/keys", timeout=TIMEOUT).text
    csrf = real.split('name="csrf_token" value="')[1].split('"')[0]
    for _ in range(3):
        rotated = attacker.post(
            origin + "/admin/keys/rotate",
            headers={"Host": f"rebind.test:{port}"},
            data={"csrf_token": csrf},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert_refused(rotated, "rebind.test")
    assert issuer.jwks() == before
