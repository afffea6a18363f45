"""Gunicorn settings every component runs with: ``gunicorn --config python:common.gunicorn_conf``.

The ``Procfile``, ``docker-compose.yml`` and the tests' gunicorn helper
(``tests/support.py``) pass it; command-line options still override it.
Its two jobs: the access log never shows a code, ``state`` or token from
a URL (:mod:`common.log_redaction`); and gunicorn itself believes no
forwarded header (``forwarded_allow_ips``), so that ``TRUSTED_PROXIES``
(Werkzeug's ``ProxyFix``, :func:`common.web.init_proxies`) is the one rule
of which proxies count.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from common.log_redaction import redact


class RedactingLogger(Logger):
    """Gunicorn's logger, with the secrets in logged URLs, Referers and Locations redacted.

    Every string atom of the access-log format is cleaned (``%(r)s`` the
    request line, ``%(q)s`` the query string, ``%(f)s`` the Referer, and
    header and environment atoms such as ``%({location}o)s``), so a custom
    ``--access-logformat`` cannot bring them back.
    """

    def atoms(self, resp, req, environ, request_time):
        """The access-log atoms of one request, each passed through :func:`redact`."""
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: redact(value) if isinstance(value, str) else value for name, value in atoms.items()}


# -- gunicorn reads the module-level names below as its settings -------------------------------------

#: gunicorn's ``logger_class`` setting (a class is accepted as well as a dotted path).
logger_class = RedactingLogger

#: gunicorn's ``forwarded_allow_ips``: no peer may set the scheme (or
#: ``SCRIPT_NAME``) through headers.  Gunicorn's default trusts
#: ``127.0.0.1,::1``: any local program, and any proxy on this machine that
#: passes a client's ``X-Forwarded-Proto`` on unchanged, would make a plain
#: http request count as https (the dev issuer's token endpoint, which
#: refuses plain http on an https issuer, RFC 6749 §3.2, would then accept
#: it).  With ``TRUSTED_PROXIES=0`` no forwarded header counts anywhere;
#: with ``TRUSTED_PROXIES=N`` the app's ``ProxyFix`` reads the last N hops of
#: ``X-Forwarded-Proto`` itself, so gunicorn's address-based trust would be a
#: second, differently shaped rule (by peer address, not by hop count) with
#: nothing left to do.  Hence the empty list in both cases, rather than the
#: proxies' addresses or ``"*"``.
forwarded_allow_ips = ""
