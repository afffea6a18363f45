"""common/cli.py: the exit codes both command-line apps document."""

from __future__ import annotations

import pytest

from common.cli import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, exit_code_for
from common.errors import FlowError
from common.http import IssuerUnreachable
from common.tokens import TokenEndpointError


@pytest.mark.parametrize(
    "error,code",
    [
        (IssuerUnreachable("down."), EXIT_UNREACHABLE),
        (FlowError("issuer_unreachable", "down."), EXIT_UNREACHABLE),
        (FlowError("api_unreachable", "down."), EXIT_UNREACHABLE),
        (FlowError("issuer_misconfigured", "the discovery document names another issuer"), EXIT_USAGE),
        (TokenEndpointError("invalid_client", "bad secret"), EXIT_REFUSED),
        (FlowError("access_denied", "no"), EXIT_REFUSED),
        (FlowError("invalid_token", "refused"), EXIT_REFUSED),
    ],
)
def test_exit_code_for(error, code):
    assert exit_code_for(error) == code
