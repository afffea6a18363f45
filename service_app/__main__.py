"""Command line of the service app.

``python -m service_app call [--explain]``   get a token (cached per run) and call the API
``python -m service_app keygen [--out PATH]`` make a key pair for ``private_key_jwt``

Exit codes: 0 ok, 1 the API or the issuer refused, 2 usage or configuration
error, 3 the issuer or the API could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from common.cli import EXIT_OK, EXIT_USAGE, exit_code_for
from common.config import PROJECT_ROOT, ConfigError, load_settings
from common.errors import FlowError

#: Where ``keygen`` writes the private key unless told otherwise (git-ignored).
DEFAULT_KEY_PATH = PROJECT_ROOT / "instance" / "service_app_private_key.pem"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--help`` on every command)."""
    parser = argparse.ArgumentParser(
        prog="python -m service_app",
        description="A service that calls an API with a Client Credentials token (RFC 6749 §4.4).",
        epilog="Exit codes: 0 ok, 1 refused by the API or the issuer, 2 usage/configuration, 3 unreachable.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    call = commands.add_parser(
        "call",
        help="get an access token for SERVICE_SCOPE and call the API",
        description="Get an access token with grant_type=client_credentials and call the API's "
        "scope-protected route (API_URL/api/custom); print its answer.",
    )
    call.add_argument("--explain", action="store_true", help="print each protocol step (secrets redacted)")
    call.add_argument(
        "--scope", help="ask for this scope instead of SERVICE_SCOPE (to see the issuer refuse one)"
    )
    call.add_argument("--path", default="/api/custom", help="the API route to call (default: /api/custom)")

    keygen = commands.add_parser(
        "keygen",
        help="write a private key for private_key_jwt and print its public JWK",
        description="Write a new private key (mode 0600) and print the public JWK to register at the issuer. "
        "Then set SERVICE_PRIVATE_KEY to the key file.",
    )
    keygen.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_KEY_PATH,
        help=f"where to write the private key (default: {DEFAULT_KEY_PATH.relative_to(PROJECT_ROOT)})",
    )
    keygen.add_argument(
        "--kind", choices=("RSA", "EC"), default="RSA", help="RSA 2048 (RS256, default) or EC P-256 (ES256)"
    )
    keygen.add_argument("--force", action="store_true", help="overwrite an existing key file")
    return parser


def cmd_call(args) -> int:
    """Get a token, call the API once, print the answer (and the steps with --explain)."""
    from common.inspector import FlowLog
    from common.recorder import FlowRecorder

    from .client import ServiceClient, auth_method

    settings = load_settings(component="service_app")
    if args.scope is not None and not args.scope.strip():
        raise ConfigError("--scope", "is empty", "Give a scope name, e.g. --scope customScope")
    if not args.path.startswith("/"):
        raise ConfigError("--path", f"{args.path!r} is not a path", "Give a path such as /api/custom")
    client = ServiceClient(settings, scope=args.scope)
    log = FlowLog(max_steps=100) if args.explain else None
    if log is not None:
        FlowRecorder(log).step(
            "service.client_credentials", auth_method=auth_method(settings), scope=client.scope
        )
    try:
        result = client.call_api(args.path, log=log)
    finally:
        if log is not None:
            # The last step ("Call the API") already shows the answer's body.
            print(log.render_text())
    if log is None:
        print(json.dumps(result.body, indent=2) if not isinstance(result.body, str) else result.body)
    return EXIT_OK


def cmd_keygen(args) -> int:
    """Write a private key (mode 0600) and print the public JWK (kid = RFC 7638 thumbprint)."""
    from common.keys import generate_private_key, private_key_pem, public_jwk

    out: Path = args.out
    if out.exists() and not args.force:
        raise ConfigError(
            "--out", f"{out} already exists", "Pass --force to replace it, or choose another --out"
        )
    key = generate_private_key(args.kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Create the file with mode 0600 from the start: a private key must
    # never be readable by other users, not even for a moment.
    if out.exists():
        out.unlink()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(private_key_pem(key))
    jwk = public_jwk(key)
    print(json.dumps(jwk, indent=2))
    print(
        f"Private key written to {out} (mode 0600). Register the public JWK above at the issuer "
        f"(Okta: the app's Client Credentials → Public key / Private key → Add key), "
        f"then set SERVICE_PRIVATE_KEY={out}",
        file=sys.stderr,
    )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return {"call": cmd_call, "keygen": cmd_keygen}[args.command](args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # keygen: a path we cannot write
        print(f"error: {error.strerror or error}: {error.filename or ''}", file=sys.stderr)
        return EXIT_USAGE
    except FlowError as error:
        print(
            f"error: {error.error}: {error.description}" + (f" Hint: {error.hint}" if error.hint else ""),
            file=sys.stderr,
        )
        return exit_code_for(error)


if __name__ == "__main__":
    sys.exit(main())
