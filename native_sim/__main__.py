"""The command line: ``python -m native_sim [--explain] COMMAND``.

Every command prints one line on failure (to standard error) and exits with
a code that says what kind of failure it was; see ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from common.cli import EXIT_USAGE
from common.config import ConfigError, load_settings
from common.errors import FlowError
from common.inspector import FlowLog

from . import commands, device, trusted
from .storage import open_token_store

EXIT_CODES = """\
exit codes:
  0  success
  1  refused by the issuer or the API (access_denied, wrong username or password, invalid token)
  2  usage or configuration error (bad option or setting, port in use, trusted mode off)
  3  the issuer or the API could not be reached
  4  timed out waiting for the user to finish signing in (device-login: the code expired)
  5  not signed in, or the refresh token expired or was revoked: run `login` again
  130  stopped with Ctrl-C
"""

DESCRIPTION = """\
A native app signing a user in, the way RFC 8252 says it must:
Authorization Code + PKCE in the system browser, the answer delivered to a
one-shot listener on http://127.0.0.1:{port}/callback. `device-login` is for a
device without a usable browser (RFC 8628: a code to enter on your phone).
`password-login` is the deprecated trusted-app mode (Resource Owner Password grant).

Tokens are kept in the OS keyring when one is available, else in a file only
you can read (NATIVE_TOKEN_DIR, default ~/.config/oauth-samples/).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global ``--explain`` and one sub-command per action."""
    # --explain is accepted before or after the command name; SUPPRESS keeps
    # the sub-parser from resetting a value given before the command.
    explain = argparse.ArgumentParser(add_help=False)
    explain.add_argument(
        "--explain",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print each protocol step (requests, responses, decoded tokens), secrets redacted",
    )

    parser = argparse.ArgumentParser(
        prog="python -m native_sim",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[explain],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[explain],
        )

    _add_login_arguments(
        command(
            "login",
            "sign in with Authorization Code + PKCE through the system browser and a loopback redirect",
        )
    )
    _add_password_login_arguments(
        command(
            "password-login",
            "trusted mode: sign in with username and password (Resource Owner "
            "Password grant, deprecated by RFC 9700; on with TRUSTED_MODE=true, and with "
            "TRUSTED_MODE=auto, the default, against the bundled dev issuer)",
        )
    )
    command(
        "device-login",
        "sign in on a device without a usable browser: show a code and a URL (and a QR code), then wait "
        "while you approve on your phone (device authorization grant, RFC 8628)",
    ).add_argument("--no-qr", action="store_true", help="do not draw the QR code of the link")
    command(
        "call-api", "call the resource server's GET /api/messages (refreshing an expired access token first)"
    )
    command("refresh", "get fresh tokens with the refresh token (the issuer may rotate it)")
    command("whoami", "show who is signed in and the stored tokens (shortened, never in full)")
    command("logout", "revoke the refresh token at the issuer and delete the stored tokens")
    return parser


def _add_login_arguments(login: argparse.ArgumentParser) -> None:
    """``login``'s options: ``--no-browser`` and ``--timeout``."""
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="do not open a browser: print the authorization URL (on a line of its own) and wait",
    )
    login.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="how long to wait for the sign-in to finish (default and maximum: LOGIN_TIMEOUT)",
    )


def _add_password_login_arguments(password: argparse.ArgumentParser) -> None:
    """``password-login``'s options: ``--username`` and ``--password-stdin`` (never the password itself)."""
    password.add_argument("--username", help="the user name (prompted for when omitted)")
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of prompting without echo",
    )


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError("give a number of seconds from 1 to 3600")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code."""
    args = build_parser().parse_args(argv)
    explain = getattr(args, "explain", False)
    # common/ logs details (a failed revocation, say) for server operators;
    # a terminal user gets our one-line messages, and the details with --explain.
    logging.basicConfig(level=logging.WARNING if explain else logging.ERROR, format="native_sim: %(message)s")
    try:
        settings = load_settings(component="native_sim")
    except ConfigError as exc:
        print(f"native_sim: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    ctx = commands.Context(
        settings=settings, store=open_token_store(settings), log=FlowLog(max_steps=200) if explain else None
    )
    try:
        if args.command == "login":
            return commands.login(ctx, open_browser=not args.no_browser, timeout=args.timeout)
        if args.command == "device-login":
            return device.device_login(ctx, show_qr=not args.no_qr)
        if args.command == "password-login":
            return trusted.password_login(ctx, username=args.username, password_stdin=args.password_stdin)
        return {
            "call-api": commands.call_api,
            "refresh": commands.refresh,
            "whoami": commands.whoami,
            "logout": commands.logout,
        }[args.command](ctx)
    except commands.CommandError as exc:
        ctx.explain()
        print(f"native_sim: {exc}", file=sys.stderr)
        return exc.exit_code
    except FlowError as exc:
        ctx.explain()
        line, code = commands.describe_flow_error(exc)
        print(f"native_sim: {line}", file=sys.stderr)
        return code
    except OSError as exc:
        # The token store (a full disk, a directory we may not write).
        print(f"native_sim: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nnative_sim: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
