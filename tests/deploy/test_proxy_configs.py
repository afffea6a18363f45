"""The documented proxy configurations stay valid and agree with ``make run-https``.

``deploy/caddy/Caddyfile`` is checked by Debian's caddy itself (``caddy
validate``, installed by ``make test``); its sites and upstreams must be
the public URLs and bind addresses ``make run-https`` uses
(``common/tls_front.py``), so that the two documented fronts describe the
same deployment.  The nginx template is rendered and checked by ``nginx -t``
in every ``make run-https`` (tests/deploy/test_tls_front.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import urlsplit

from common.config import DEFAULTS
from common.tls_front import BIND_VARIABLES, HTTPS_URLS, https_environment
from tests.support import ROOT

CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"


def test_the_caddyfile_is_valid(tmp_path):
    caddy = shutil.which("caddy")
    assert caddy, "caddy is not installed (make test installs Debian's caddy)"
    # Caddy keeps its local CA under XDG_DATA_HOME: a directory of the test's, not the user's.
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0 and "Valid configuration" in result.stdout + result.stderr, result.stderr


def test_the_caddyfile_fronts_what_make_run_https_runs():
    sites = dict(
        re.findall(
            r"^(https://\S+) \{\n\tbind 127\.0\.0\.1\n\treverse_proxy (\S+)\n\}", CADDYFILE.read_text(), re.M
        )
    )
    changes = https_environment(dict(DEFAULTS), DEFAULTS)
    expected = {}
    for variable, url in HTTPS_URLS.items():
        parts = urlsplit(url)
        expected[f"{parts.scheme}://{parts.netloc}"] = changes[BIND_VARIABLES[variable]]
    assert sites == expected
