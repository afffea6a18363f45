"""The shared table of callback cases (tests/cases/callback_cases.json), run through the real oidc.js.

The same table drives the Python relying party's tests, so both keep the
same rules in the same order: repeated parameters (RFC 6749 §3.1), then
``state`` (RFC 6749 §10.12), then ``iss`` (RFC 9207 §2.4), then the
issuer's ``error`` (RFC 6749 §4.1.2.1), then the code.

oidc.js is imported into the SPA's own page in Chromium (same origin, same
CSP), and every case is evaluated there, three ways:

* the code flow: the answer in the query (RFC 6749 §4.1.2);
* the Implicit flow: the same answer in the fragment (OIDC Core 3.2.2.5),
  with the access token where the code stands, so that the same checks run
  in the same order before any token is touched;
* the Implicit flow's fallback: an issuer error put in the query although
  the fragment was asked for (only the cases that carry an ``error``).

All runs are evaluated in one page load; each case is then its own test.
The table's forged error links are also followed by the whole page, with a
sign-in in progress, to show that none of their text reaches the screen.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest

from tests.support import free_port, gunicorn

pytestmark = pytest.mark.browser

TABLE = json.loads((Path(__file__).parents[1] / "cases" / "callback_cases.json").read_text())
CASES = TABLE["cases"]
#: A made-up phone number that the table's forged error descriptions carry.
FORGED_TEXT = "555-0100"
#: The ID token is never looked at by these checks: any three-part value stands in.
IMPLICIT_EXTRA = "&token_type=Bearer&id_token=h.p.s"

FLOWS = ["code flow (query)", "implicit (fragment)", "implicit error in the query"]


def answer_of(case) -> str:
    """The case's query, with the sign-in's ``state`` and the URL-encoded issuer filled in."""
    issuer = quote(TABLE["issuer"], safe="")
    return case["query"].replace("{state}", TABLE["state"]).replace("{issuer}", issuer)


def applies(case, flow: str) -> bool:
    """The query fallback is for issuer errors only; the other flows take every case."""
    return flow != "implicit error in the query" or "error" in parse_qs(answer_of(case))


def callback_url(redirect_uri: str, case, flow: str) -> str:
    """The URL the browser is sent back to, for ``case`` in ``flow``."""
    answer = answer_of(case)
    if flow == "code flow (query)":
        return f"{redirect_uri}?{answer}"
    if flow == "implicit (fragment)":
        # The access token takes the code's place (a repeated code becomes a repeated access token).
        return f"{redirect_uri}#{answer.replace('code=', 'access_token=')}{IMPLICIT_EXTRA}"
    return f"{redirect_uri}?{answer}#"


RUNS = [
    pytest.param(case, flow, id=f"{case['name']} / {flow}")
    for case in CASES
    for flow in FLOWS
    if applies(case, flow)
]


@pytest.fixture(scope="module")
def lone_spa():
    """Just the SPA's server: these tests never leave the page."""
    port = free_port()
    env = {
        "SPA_BASE_URL": f"http://localhost:{port}",
        "ISSUER": TABLE["issuer"],
        "API_URL": "https://api.test",
        "SPA_CLIENT_ID": "spa-client",
    }
    service = gunicorn(
        "spa_app-cases", "spa_app:create_app()", env, port, workers=1, health_path="/healthz"
    ).start()
    yield f"http://localhost:{port}"
    service.stop()


EVALUATE = """
const done = arguments[arguments.length - 1];
const [runs, state, issuer] = arguments;
import('/static/js/oidc.js').then((oidc) => done(runs.map(({ href, mode, issSupported }) => {
  const pending = { state, mode, createdAt: Date.now() };
  const metadata = { issuer, authorization_response_iss_parameter_supported: issSupported };
  try {
    const params = oidc.readCallback(href, mode);
    const answer = oidc.checkAuthorizationResponse(params, pending, metadata, { loginTimeout: 600 });
    return { outcome: 'ok', code: mode === 'implicit' ? answer.access_token : answer };
  } catch (err) {
    if (!(err instanceof oidc.OidcError)) return { outcome: `not an OidcError: ${err}` };
    return { outcome: err.error, shown: [err.message, err.description, err.hint].join('\\n') };
  }
})), (err) => done([{ outcome: `import failed: ${err}` }]));
"""

_outcomes: dict[tuple[str, str], dict] = {}


@pytest.fixture
def outcomes(browser, lone_spa):
    """{(case name, flow): what oidc.js made of it}, evaluated for every case in one page load."""
    if not _outcomes:
        redirect_uri = f"{lone_spa}/login/callback"
        runs = [run.values for run in RUNS]
        browser.get(lone_spa + "/")
        results = browser.execute_async_script(
            EVALUATE,
            [
                {
                    "href": callback_url(redirect_uri, case, flow),
                    "issSupported": case["iss_supported"],
                    "mode": "pkce" if flow == "code flow (query)" else "implicit",
                }
                for case, flow in runs
            ],
            TABLE["state"],
            TABLE["issuer"],
        )
        assert len(results) == len(runs), results
        for (case, flow), result in zip(runs, results, strict=True):
            _outcomes[(case["name"], flow)] = result
    return _outcomes


def test_the_table_is_well_formed():
    """Every case names an outcome; every accepted case names its code; names are unique."""
    assert len({case["name"] for case in CASES}) == len(CASES)
    for case in CASES:
        assert case["expect"] and isinstance(case["iss_supported"], bool), case
        assert (case["expect"] == "ok") == ("code" in case), case


@pytest.mark.parametrize("case, flow", RUNS)
def test_callback_case(outcomes, case, flow):
    """oidc.js reaches the table's outcome, and shows the issuer's text only when the table says so."""
    result = outcomes[(case["name"], flow)]
    assert result["outcome"] == case["expect"], result
    if case["expect"] == "ok":
        assert result["code"] == case["code"]
        return
    description = (parse_qs(answer_of(case)).get("error_description") or [None])[0]
    if case.get("shows_description") is True:
        assert description and description in result["shown"], result
    if case.get("shows_description") is False:
        assert FORGED_TEXT not in result["shown"], result
        assert description not in result["shown"], result


FORGED = [case for case in CASES if case.get("shows_description") is False]


@pytest.mark.parametrize("case", FORGED, ids=[case["name"] for case in FORGED])
def test_a_forged_error_link_puts_none_of_its_text_on_the_page(spa, case):
    """The whole page, flow inspector included, while a sign-in is in progress in this tab.

    Anyone can link a user to the callback with an error_description of
    their choosing; unless the answer is this tab's (state, then iss), not
    a word of it is shown on the SPA's origin (RFC 6749 §10.12).
    """
    spa.open()
    spa.start_sign_in()
    state = spa.authorization_request()["state"]
    spa.driver.get(f"{spa.settings.spa_redirect_uri}?{case['query'].replace('{state}', state)}")
    spa.wait_ready()
    assert spa.error_code() == case["expect"]
    assert FORGED_TEXT not in spa.driver.execute_script("return document.documentElement.textContent")
    assert "Authorization response refused" in spa.inspector_titles()
    spa.assert_no_tokens()
