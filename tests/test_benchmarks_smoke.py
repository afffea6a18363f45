"""`make bench` works: the harness runs end to end in its smoke mode and prints every figure.

Only that the table is complete and holds numbers is checked here; the
performance goals are reported by `make bench`, never enforced by a test
(a busy CI machine must not fail the build for being slow).
"""

import re
import shutil
import subprocess
import sys

import pytest

from tests.support import ROOT

ROWS = {
    "1": "Resource server",
    "2": "Token validation",
    "3": "Sign-in",
    "4": "Session size",
    "5": "Service token reuse",
    "6": "Cold start",
    "7": "BFF proxy",
    "8": "Peers, one token repeated",
    "9": "Peers, never-seen tokens",
    "10": "DPoP at the API",
    "11": "Redis memory per signed-in user",
    "12": "Signed-in /profile with",
    "13": "API requests/s, 1 and 2 workers",
}


@pytest.mark.timeout(330)
def test_quick_run_prints_every_figure_with_numbers():
    assert shutil.which("wrk"), (
        "wrk is not installed: `make test` and `make bench` install it (apt-get install wrk)"
    )
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=320
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = run.stdout
    for number, title in ROWS.items():
        row = re.search(rf"^{number} +{re.escape(title)}.*$", table, re.M)
        assert row, f"row {number} ({title}) missing:\n{table}"
        cells = re.split(r"\s{2,}", row.group(0).strip())
        # number, title, result, goal, met/MISSED
        assert len(cells) == 5, cells
        assert re.search(r"\d", cells[2]), f"no number in the result of row {number}: {cells}"
        assert cells[4] in {"met", "MISSED", "-"}, cells
    assert "Machine:" in table and "how:" in table
    # The side-by-side run served ours and (without the peers' virtualenv, on ours) PyJWT's peer.
    assert re.search(r"ours / PyJWT \(PyJWKClient\): [\d.]+x", table), table
