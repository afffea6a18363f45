"""The command line without an issuer: help, keygen, configuration errors, unreachable issuer."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest

from common.keys import load_private_key, public_jwk
from service_app.__main__ import main
from tests.support import ROOT


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``python -m service_app ...`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "service_app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.mark.parametrize("args", [["--help"], ["call", "--help"], ["keygen", "--help"]])
def test_every_command_has_help(args):
    result = run_cli(*args)
    assert result.returncode == 0
    assert "usage: python -m service_app" in result.stdout


def test_no_command_is_a_usage_error():
    result = run_cli()
    assert result.returncode == 2 and "COMMAND" in result.stderr


def rfc7638_thumbprint(jwk: dict) -> str:
    """Computed here independently of common.keys: SHA-256 over the required members, sorted, no spaces."""
    members = {name: jwk[name] for name in ("e", "kty", "n")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_keygen_writes_a_private_key_0600_and_prints_the_public_jwk(tmp_path):
    out = tmp_path / "keys" / "service.pem"
    result = run_cli("keygen", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    jwk = json.loads(result.stdout)
    assert jwk["kty"] == "RSA" and jwk["use"] == "sig" and jwk["alg"] == "RS256"
    assert "d" not in jwk and "p" not in jwk  # public half only
    assert jwk["kid"] == rfc7638_thumbprint(jwk)
    assert public_jwk(load_private_key(out)) == jwk  # the file holds the matching private key
    assert "SERVICE_PRIVATE_KEY=" in result.stderr


def test_keygen_refuses_to_overwrite_a_key(tmp_path):
    out = tmp_path / "service.pem"
    out.write_text("keep me")
    result = run_cli("keygen", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "already exists" in result.stderr
    assert out.read_text() == "keep me"


def test_a_bad_setting_is_a_one_line_configuration_error():
    result = run_cli("call", env={"ISSUER": "https://{yourOktaDomain}/oauth2/default"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: ISSUER:") and result.stderr.count("\n") == 1


def test_a_scope_that_is_not_a_scope_is_a_usage_error(capsys):
    assert main(["call", "--scope", " "]) == 2
    assert "--scope" in capsys.readouterr().err


def test_an_unreachable_issuer_exits_3_after_bounded_retries():
    result = run_cli("call", env={"ISSUER": "http://issuer.test/oauth2/default", "HTTP_TIMEOUT": "1"})
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("error: issuer_unreachable:") and "Traceback" not in result.stderr


def test_a_private_key_file_that_is_no_key_is_a_configuration_error(tmp_path):
    bogus = tmp_path / "not-a-key.pem"
    bogus.write_text("-----BEGIN NOTHING-----\n")
    result = run_cli("call", env={"SERVICE_PRIVATE_KEY": str(bogus)})
    assert result.returncode == 2
    assert result.stderr.startswith("error: SERVICE_PRIVATE_KEY:") and result.stderr.count("\n") == 1
