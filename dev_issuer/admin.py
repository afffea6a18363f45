"""The issuer's own pages: home, Applications (the README's "Add Application"), and keys."""

from __future__ import annotations

import ipaddress

import click
from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, session, url_for
from flask.cli import with_appcontext

from common.errors import error_response
from common.web import require_csrf

from .keys import MAX_RETIRED, ROTATION_INTERVAL, RotationRefused
from .state import state

bp = Blueprint("admin", __name__)


def is_loopback(address: str | None) -> bool:
    """True when the client's address is this machine's (key rotation is allowed only from here)."""
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


@bp.route("/")
def home():
    """What this issuer is, where its endpoints are, who is signed in."""
    settings = state().settings
    return render_template("dev_issuer/home.html", settings=settings, username=session.get("username"))


@bp.route("/admin/apps")
def apps():
    """Every registered client: type, grants, auth method, redirect URIs.

    This is what one would type into an identity provider's console when
    adding each application; here it is derived from the same settings the
    apps read.
    """
    issuer = state()
    return render_template("dev_issuer/apps.html", clients=issuer.clients.values(), settings=issuer.settings)


@bp.route("/admin/keys")
def keys():
    """The signing keys and their roles, with the rotation button."""
    return render_template(
        "dev_issuer/keys.html",
        summary=state().keyring.summary(),
        can_rotate=is_loopback(request.remote_addr),
        rotation_interval=ROTATION_INTERVAL,
        max_retired=MAX_RETIRED,
    )


@bp.route("/admin/keys/rotate", methods=["POST"])
def rotate_keys():
    """Rotate the signing keys (from this machine only, with the page's CSRF token, at a bounded rate).

    The request's ``Host`` is already the issuer's (``hosts.py``), so a page
    on a rebinding host name cannot get here with its stolen CSRF token.
    """
    if not is_loopback(request.remote_addr):
        abort(403, description="Key rotation is allowed only from the issuer's own machine.")
    require_csrf()
    try:
        summary = state().keyring.rotate()
    except RotationRefused as refused:
        return error_response(
            "rotation_refused",
            str(refused),
            "Tokens signed with the retired keys must keep verifying until they expire, so rotations are "
            "rate-limited. Wait, then rotate again.",
            429,
            retry_url=url_for(".keys"),
            headers={"Retry-After": str(refused.retry_after)},
        )
    if request.accept_mimetypes.best == "application/json":
        return jsonify(summary)
    flash(f"Rotated: now signing with {summary['current']}; published next key {summary['next']}.")
    return redirect(url_for(".keys"))


@click.command("rotate-keys")
@with_appcontext
def rotate_keys_command():
    """Rotate the dev issuer's signing keys (the next key was already published).

    Without ``REDIS_URL`` the settings name the Redis of the suite ``make
    run`` is running (``instance/suite.json``); when that Redis cannot be
    reached, or a rotation is refused (at most one a minute), one line says
    so, not a traceback.
    """
    import redis  # noqa: PLC0415 -- only this command's error handling needs it

    try:
        summary = state().keyring.rotate()
    except RotationRefused as refused:
        raise click.ClickException(f"rotation refused: {refused}") from None
    except redis.RedisError as exc:
        raise click.ClickException(
            f"cannot reach the dev issuer's Redis ({' '.join(str(exc).split())}). Is the suite running? "
            "Start it with `make run`, or set REDIS_URL to the Redis the dev issuer uses."
        ) from None
    click.echo(f"now signing with: {summary['current']}")
    click.echo(f"published next:   {summary['next']}")
    click.echo(f"still published:  {', '.join(summary['retired'])}")
