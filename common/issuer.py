"""The issuer: its discovery document, its key set and the ID-token algorithms we accept from it.

One :class:`Issuer` per process and issuer is shared by every client that
trusts it and by the resource server, so the discovery document and the
JWKS are fetched once and cached for all of them.

* Discovery (OpenID Connect Discovery 1.0 §4): the document at
  ``{issuer}/.well-known/openid-configuration``, whose ``issuer`` must be
  exactly the configured one (§4.3), cached for ``metadata_ttl`` seconds;
  past that, one caller refreshes it while the others use the cached copy,
  and a failed fetch is not retried for a while (``retry_backoff``,
  ``refresh_backoff``; :mod:`common.single_flight`), so a hung issuer never queues
  the callers up.
* Endpoints from it are ``https`` (or loopback / ``.test`` ``http``),
  because tokens and secrets travel to them (RFC 6749 §3.1, §3.2).
* The key set (a :class:`common.jwks.KeySet` for ``jwks_uri``), derived
  again only when a new discovery document has arrived.
* The ID-token algorithms: the local allow-list, narrowed by what the
  issuer advertises (never taken from discovery alone, RFC 8725 §3.1).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import requests

from .config import Settings
from .errors import FlowError
from .http import get_json, http_session, require_secure_url
from .jwks import SAFE_ALGORITHMS, KeySet, negotiate_algorithms
from .recorder import NULL_RECORDER, FlowRecorder
from .single_flight import SingleFlight
from .untrusted import plain_text

logger = logging.getLogger(__name__)

#: The members of the discovery document the inspector shows.
SHOWN_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


class Issuer:
    """One OpenID Provider / authorization server, as this process knows it.

    :param settings: the validated settings: ``issuer`` (the identifier,
        ``ISSUER``), ``http_timeout``, ``clock_leeway``, ``login_timeout``.
    :param http: a session with a timeout (default: :func:`common.http.http_session`).
    :param algorithms: the local allow-list for ID-token signatures; anything
        but RS256 is used only if the issuer also advertises it.
    :param metadata_ttl: seconds the discovery document is cached.
    :param jwks_ttl: seconds the JWKS is cached.
    :param jwks_refetch_cooldown: minimum seconds between refetches for an unknown ``kid``.
    :param retry_backoff: seconds a failed discovery fetch is not retried while
        nothing is cached (short: a sign-in is waiting for it).
    :param refresh_backoff: seconds a failed refresh of a cached document is
        not retried (the cached copy serves meanwhile).
    :param clock: a monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: requests.Session | None = None,
        algorithms: tuple[str, ...] = SAFE_ALGORITHMS,
        metadata_ttl: float = 3600,
        jwks_ttl: float = 300,
        jwks_refetch_cooldown: float = 30,
        retry_backoff: float = 1,
        refresh_backoff: float = 30,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.identifier: str = settings.issuer
        self.http = http or http_session(settings)
        self.allowed_algorithms = tuple(algorithms)
        self.metadata_ttl = metadata_ttl
        self.jwks_ttl = jwks_ttl
        self.jwks_refetch_cooldown = jwks_refetch_cooldown
        self.retry_backoff = retry_backoff
        self.refresh_backoff = refresh_backoff
        self.clock = clock
        self._discovery = SingleFlight(clock)  # one discovery fetch at a time
        self._lock = threading.Lock()  # guards only the choice of _keyset (no I/O under it)
        self._metadata: dict | None = None
        self._metadata_at = 0.0
        self._keyset: KeySet | None = None
        self._keyset_source: dict | None = None  # the discovery document _keyset was derived from

    @property
    def discovery_url(self) -> str:
        """``{issuer}/.well-known/openid-configuration`` (Discovery §4.1)."""
        return self.identifier.rstrip("/") + "/.well-known/openid-configuration"

    def metadata(self, recorder: FlowRecorder = NULL_RECORDER) -> dict:
        """The discovery document, cached for ``metadata_ttl`` seconds (Discovery §4, §4.3).

        A cached document answers at once, even past its TTL: then one
        caller refreshes it while the others go on with the cached copy, and
        a failed refresh is retried only after ``refresh_backoff`` seconds
        (:mod:`common.single_flight`).  With nothing cached, one fetch serves every
        caller waiting for it, and a failure is the answer for the back-off.

        :param recorder: told about the fetch, when one happens.
        :raises FlowError: ``issuer_unreachable`` or ``issuer_misconfigured``.
        """
        document = self._metadata
        if document is not None:
            stale = self.clock() - self._metadata_at >= self.metadata_ttl
            if stale and not self._discovery.backing_off(self.refresh_backoff):
                try:
                    self._discovery.try_run(lambda: self._fetch_metadata(recorder))
                except FlowError as exc:
                    logger.warning("discovery refresh failed (%s); using cached metadata", exc.description)
            return self._metadata or document
        with recorder.failures("discovery"):
            error = self._discovery.error
            if error is not None and self._discovery.backing_off(self.retry_backoff):
                raise error.with_traceback(None)  # the last fetch's answer, until the back-off is over
            self._discovery.run_or_wait(lambda: self._fetch_metadata(recorder))
        return self._metadata

    def _fetch_metadata(self, recorder: FlowRecorder) -> None:
        """Fetch and check the discovery document, and cache it (the caller is the only one fetching)."""
        require_secure_url(self.identifier, "issuer identifier (ISSUER)")
        document = get_json(self.http, self.discovery_url, "discovery document")
        self._check_identifier(document)
        self._metadata, self._metadata_at = document, self.clock()
        shown = {k: document[k] for k in SHOWN_METADATA if k in document}
        recorder.step(
            "discovery",
            request={"method": "GET", "url": self.discovery_url},
            response={"status": 200, "body": shown},
        )

    def _check_identifier(self, document: dict) -> None:
        """Discovery §4.3: the document's ``issuer`` is exactly ours, or a look-alike could hand us keys."""
        if document.get("issuer") != self.identifier:
            raise FlowError(
                "issuer_misconfigured",
                f"The discovery document names the issuer {plain_text(document.get('issuer'), 200)!r}, "
                f"but this app is configured for {self.identifier!r}.",
                "Set ISSUER to exactly the 'issuer' value of the discovery document "
                "(watch for a trailing slash).",
                502,
            )

    def endpoint(
        self, name: str, *, required: bool = True, recorder: FlowRecorder = NULL_RECORDER
    ) -> str | None:
        """An endpoint URL from discovery, checked to be https (or loopback http).

        :param name: the metadata key, e.g. ``token_endpoint``.
        :param required: raise when the issuer does not advertise it (else return ``None``).
        :raises FlowError: ``issuer_misconfigured``.
        """
        return self._endpoint_in(self.metadata(recorder), name, required=required, recorder=recorder)

    @staticmethod
    def _endpoint_in(
        document: dict, name: str, *, required: bool = True, recorder: FlowRecorder = NULL_RECORDER
    ) -> str | None:
        """:meth:`endpoint`, read from one discovery document."""
        url = document.get(name)
        with recorder.failures("discovery"):
            if not url:
                if not required:
                    return None
                raise FlowError(
                    "issuer_misconfigured",
                    f"The issuer does not advertise a {name}.",
                    "Check the issuer's discovery document; this flow needs that endpoint.",
                    502,
                )
            if not isinstance(url, str):
                raise FlowError("issuer_misconfigured", f"The issuer's {name} is not a URL.", "", 502)
            return require_secure_url(url, name)

    @property
    def keyset(self) -> KeySet:
        """The issuer's JWKS (from ``jwks_uri``), cached.

        Called for every token the resource server checks: ``jwks_uri`` is
        looked up and vetted again only when a new discovery document has
        come in, not on every call.
        """
        metadata = self.metadata()
        keyset = self._keyset
        if keyset is not None and self._keyset_source is metadata:
            return keyset
        jwks_uri = self._endpoint_in(metadata, "jwks_uri")
        with self._lock:
            if self._keyset is None or self._keyset.jwks_uri != jwks_uri:
                self._keyset = KeySet(
                    jwks_uri,
                    http=self.http,
                    ttl=self.jwks_ttl,
                    refetch_cooldown=self.jwks_refetch_cooldown,
                    clock=self.clock,
                )
            self._keyset_source = metadata
            return self._keyset

    def id_token_algorithms(self) -> tuple[str, ...]:
        """Algorithms accepted for ID tokens: local allow-list ∩ advertised (RS256 always)."""
        return negotiate_algorithms(
            self.metadata().get("id_token_signing_alg_values_supported"), self.allowed_algorithms
        )
