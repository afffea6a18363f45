"""Why an outbound request failed, in words a reader understands (not an exception class name).

Messages such as "The issuer's discovery document could not be reached"
used to end with ``(ConnectionError)``: a Python class name, which tells a
user of the API or of an app nothing.  :func:`failure_reason` says what
happened instead.
"""

from __future__ import annotations

import requests

#: The failure kinds of requests (most specific first) and what each means.
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (requests.exceptions.SSLError, "the TLS handshake failed (check the certificate and the https URL)"),
    (requests.exceptions.ProxyError, "the proxy refused the connection"),
    (requests.Timeout, "it did not answer in time"),
    (requests.TooManyRedirects, "it redirected too many times"),
    (requests.exceptions.ChunkedEncodingError, "its answer was cut off"),
    (requests.exceptions.ContentDecodingError, "its answer could not be decoded"),
    (
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ),
        "its URL is not valid",
    ),
    (requests.ConnectionError, "the connection was refused or dropped (is it running at that address?)"),
)


def failure_reason(exc: BaseException) -> str:
    """A short phrase saying why a request failed, e.g. "the connection was refused or dropped"."""
    for kinds, reason in _REASONS:
        if isinstance(exc, kinds):
            return reason
    return "the request failed"
