"""``native_sim device-login`` against an independent OpenID Provider (oidc-provider), by environment alone.

The provider's own device flow (``features.deviceFlow`` in ``server.js``):
its ``device_authorization_endpoint`` (``/device/auth``), its verification
page (``/device``), its sign-in and consent pages.  Chromium approves there;
the CLI knows only ``ISSUER``, ``NATIVE_CLIENT_ID`` and ``API_URL``.
"""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.device_helpers import DeviceRun
from tests.native_sim.conftest import cli_env, run_cli
from tests.second_issuer.conftest import NATIVE_CLIENT_ID


def approve_at_provider(browser, url: str, login: str) -> None:
    """Chromium at oidc-provider: confirm the code, sign in (any password), consent, see the success page."""
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    confirm = (By.CSS_SELECTOR, "button[form='op.deviceConfirmForm']:not([name='abort'])")
    wait.until(EC.element_to_be_clickable(confirm)).click()
    wait.until(EC.presence_of_element_located((By.NAME, "login"))).send_keys(login)
    browser.find_element(By.NAME, "password").send_keys("any password will do")
    sign_in = browser.find_element(By.CSS_SELECTOR, "button.login-submit")
    sign_in.click()
    wait.until(EC.staleness_of(sign_in))
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button.login-submit"))).click()  # consent
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Sign-in Success"))


@pytest.mark.browser
def test_device_login_at_oidc_provider_then_call_api(browser, second_stack, tmp_path):
    env = cli_env(second_stack, tmp_path / "tokens")
    run = DeviceRun(env, "--no-qr")
    try:
        complete = run.complete_uri()
        verification_uri = second_stack["ISSUER"] + "/device"
        assert verification_uri in run.out and complete.startswith(verification_uri + "?user_code=")
        approve_at_provider(browser, complete, "dora")
        code, out, err = run.finish()
    finally:
        run.stop()
    assert code == 0, (out, err)
    assert "Signed in as dora@example.test" in out

    api = run_cli(env, "call-api")
    assert api.returncode == 0, api.stderr
    answer = json.loads(api.stdout[api.stdout.index("{") :])
    assert answer["sub"] == "dora" and answer["client_id"] == NATIVE_CLIENT_ID
