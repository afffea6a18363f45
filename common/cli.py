"""What the command-line apps share: their exit codes and what a failure maps to.

``python -m native_sim`` and ``python -m service_app`` document the same
first four codes in ``--help``, so a script can tell "the issuer said no"
from "the issuer is down" without reading the message.
"""

from __future__ import annotations

from .errors import FlowError
from .http import IssuerUnreachable

EXIT_OK = 0
EXIT_REFUSED = 1  # the issuer or the API said no (access_denied, invalid_client, invalid_token ...)
EXIT_USAGE = 2  # bad command line or configuration (including an issuer that does not match ISSUER)
EXIT_UNREACHABLE = 3  # the issuer or the API could not be reached

#: Error codes that mean "could not be reached": trying again later may work.
UNREACHABLE_ERRORS = frozenset({"issuer_unreachable", "api_unreachable"})


def exit_code_for(error: FlowError) -> int:
    """The exit code for a :class:`~common.errors.FlowError` that ended a command."""
    if isinstance(error, IssuerUnreachable) or error.error in UNREACHABLE_ERRORS:
        return EXIT_UNREACHABLE
    if error.error == "issuer_misconfigured":
        return EXIT_USAGE  # ISSUER names an issuer whose discovery document disagrees
    return EXIT_REFUSED
