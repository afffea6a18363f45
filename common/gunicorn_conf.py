"""Gunicorn settings every component runs with: ``gunicorn --config python:common.gunicorn_conf``.

The ``Procfile``, ``docker-compose.yml`` and the tests' gunicorn helper
(``tests/support.py``) pass it; command-line options still override it.
Its one job: the access log never shows a code, ``state`` or token from a
URL (:mod:`common.log_redaction`).
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
