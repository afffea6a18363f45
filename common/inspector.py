"""The flow inspector: a readable record of each protocol step an app performed.

The suite teaches, so every app keeps, per user session, what it sent to the
issuer and what came back: the authorization request with its parameters,
the callback, the token request (secrets redacted), the response (tokens
shortened) and each JWT decoded with the validation checks it passed or
failed.  Web apps show it on a page (``common/inspector.html``), command-line
apps print it with ``--explain`` (:meth:`FlowLog.render_text`).

Nothing secret is ever stored here: client secrets, passwords, PKCE
verifiers, client assertions and ``Authorization`` headers become
``[redacted]``; tokens are shortened to their first and last characters
(refresh tokens, long-lived credentials, to their first four only).

The protocol code does not write here directly: it reports named steps to
the :class:`common.recorder.FlowRecorder` it was handed, which writes them
into a :class:`FlowLog` with the texts of :mod:`common.narration`.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any, Iterable, Mapping
from urllib.parse import unquote_plus, urlsplit, urlunsplit

#: Steps kept per log: older ones fall off the front.
MAX_STEPS = 20

#: Keys whose values are replaced entirely (compared case-insensitively).
SECRET_KEYS = frozenset(
    {
        "client_secret",
        "password",
        "code_verifier",
        "client_assertion",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "secret_key",
        "private_key",
        # A DPoP private key kept with the tokens (common/dpop_client.py): never shown.
        "dpop_jwk",
    }
)

#: Keys whose values are tokens: shown shortened.
TOKEN_KEYS = frozenset(
    {
        "access_token",
        "id_token",
        "code",
        "device_code",
        "token",
        "id_token_hint",
        "logout_token",
        "subject_token",
        # A DPoP proof (RFC 9449 §4) in a request's headers: shown shortened, decoded beside it.
        "dpop",
    }
)

#: Long-lived credentials: only a prefix is shown.
REFRESH_KEYS = frozenset({"refresh_token"})

REDACTED = "[redacted]"

#: Strings longer than this inside bodies are cut (keeps the session small).
MAX_TEXT = 300

#: The log lives in the Redis session, and bodies come from the issuer or the
#: API, which we do not control: a long list or a big object there must not
#: land in the session as it is.  Lists keep their first MAX_ITEMS items,
#: objects their first MAX_KEYS keys (each with a "… (k more)" marker), and
#: anything nested deeper than MAX_DEPTH is summarised (which also keeps the
#: cleaning itself clear of Python's recursion limit).
MAX_ITEMS = 20
MAX_KEYS = 40
MAX_DEPTH = 8

#: Most characters of JSON one step may take.  A real step is well under
#: 2 KiB; past this, the largest parts (the response body first) are left
#: out with a note, so a whole log stays within MAX_STEPS * MAX_STEP_CHARS.
MAX_STEP_CHARS = 4096

#: URLs longer than this are cut (an authorization request is about 600).
MAX_URL = 2048

#: Longest payload segment :func:`decode_unverified` decodes (for display only).
MAX_DISPLAY_SEGMENT = 16384

#: Longest header segment :func:`decode_unverified` decodes (a real one is under 200 characters).
MAX_DISPLAY_HEADER = 2048


def shorten(token: Any, head: int = 8, tail: int = 3) -> str:
    """``eyJhbGci…(1234 chars)…x9Q``: enough to recognise a token, not to use it.

    :param token: the token (non-strings are turned into text first).
    :param head: characters kept at the start.
    :param tail: characters kept at the end (0 for none).
    """
    text = "" if token is None else str(token)
    if len(text) <= head + tail + 4:
        # Too short to shorten meaningfully: still never show it whole.
        return f"{text[: min(head, len(text) // 2)]}…({len(text)} chars)"
    end = text[-tail:] if tail else ""
    return f"{text[:head]}…({len(text)} chars)…{end}" if tail else f"{text[:head]}…({len(text)} chars)"


def _clean_value(key: str, value: Any, depth: int = 0) -> Any:
    lowered = key.lower()
    if lowered in SECRET_KEYS:
        return REDACTED if value not in (None, "") else value
    if lowered in REFRESH_KEYS and value:
        return shorten(value, head=4, tail=0)
    if lowered in TOKEN_KEYS and isinstance(value, str) and value:
        return shorten(value)
    return _clean(value, depth)


def _clean(value: Any, depth: int = 0) -> Any:
    """A bounded, redacted copy of ``value`` (see MAX_ITEMS, MAX_KEYS, MAX_DEPTH)."""
    if isinstance(value, (Mapping, list, tuple)) and depth >= MAX_DEPTH:
        return f"…(nested deeper than {MAX_DEPTH} levels)"
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if len(out) == MAX_KEYS:
                out["…"] = f"({len(value) - MAX_KEYS} more)"
                break
            out[str(k)] = _clean_value(str(k), v, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [_clean(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"… ({len(value) - MAX_ITEMS} more)")
        return items
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + f"…({len(value)} chars)"
    return value


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str))


def _fit(entry: dict) -> dict:
    """Keep one step under MAX_STEP_CHARS of JSON, leaving out its biggest parts first.

    Every part is bounded already, but forty keys of three hundred
    characters, nested, still add up; what the reader needs most (title,
    explanation, status, checks, error) is kept.
    """
    for section, part in (
        ("response", "body"),
        ("jwt", "claims"),
        ("request", "params"),
        ("request", "headers"),
        ("jwt", "header"),
    ):
        if _json_size(entry) <= MAX_STEP_CHARS:
            break
        holder = entry.get(section)
        if isinstance(holder, dict) and part in holder:
            holder[part] = f"…(left out: {_json_size(holder[part])} characters, too large for the inspector)"
    return entry


def redact(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``mapping`` that is safe to show (and store).

    Secrets (``client_secret``, ``password``, ``code_verifier``,
    ``client_assertion``, ``Authorization``/``Cookie`` headers) become
    ``[redacted]``; tokens are shortened; nested mappings are cleaned too.

    :param mapping: form parameters, headers or a JSON body.
    :return: a new dict.
    """
    return _clean(dict(mapping or {}))


def redact_url(url: str) -> str:
    """``url`` with secret or token query / fragment parameters redacted or shortened."""
    parts = urlsplit(url)

    def clean(qs: str) -> str:
        if not qs or "=" not in qs:
            return qs
        # Work on the raw pairs so that harmless parameters stay exactly as sent.
        out = []
        for pair in qs.split("&"):
            raw_key, sep, raw_value = pair.partition("=")
            key = unquote_plus(raw_key)
            cleaned = _clean_value(key, unquote_plus(raw_value))
            sensitive = key.lower() in SECRET_KEYS | TOKEN_KEYS | REFRESH_KEYS
            out.append(f"{raw_key}{sep}{cleaned if sensitive else raw_value}")
        return "&".join(out)

    return urlunsplit((parts.scheme, parts.netloc, parts.path, clean(parts.query), clean(parts.fragment)))


def decode_unverified(token: str) -> tuple[dict, dict]:
    """Header and claims of a JWT, **without** verifying anything: for display only.

    :param token: a compact JWS.
    :return: ``(header, claims)``.
    :raises ValueError: when the token is not a JWT.
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise ValueError("not a JWT (expected three dot-separated parts)")
    # Capped before parsing, like common.jwks.decode_jwt does: only a display,
    # but deeply nested JSON would otherwise raise RecursionError here.
    header = _segment_json(parts[0], MAX_DISPLAY_HEADER)
    claims = _segment_json(parts[1], MAX_DISPLAY_SEGMENT)
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a JWT (header or payload is not a JSON object)")
    return header, claims


def _segment_json(segment: str, max_length: int) -> Any:
    """One base64url JSON segment of a compact JWS (RFC 7515 §2), decoded for display.

    :raises ValueError: too long, not base64url, not UTF-8 or not JSON (nesting too deep included).
    """
    if len(segment) > max_length:
        raise ValueError(f"not a JWT (segment longer than {max_length} characters)")
    try:
        raw = base64.urlsafe_b64decode(segment.encode("ascii") + b"=" * (-len(segment) % 4))
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error, RecursionError) as exc:
        raise ValueError(f"not a JWT ({type(exc).__name__})") from None


class FlowLog:
    """An ordered, bounded, JSON-able list of protocol steps.

    Each step is a dict ``{n, title, explanation, at, request?, response?, checks?, jwt?, error?}``
    where ``request`` is ``{method, url, params?, headers?}`` (redacted),
    ``response`` is ``{status, body}`` (tokens shortened), ``jwt`` is
    ``{header, claims, checks: [{check, ok, detail}]}`` and ``error`` is
    ``{error, description}`` when the step failed.

    :param steps: steps from :meth:`to_list` (e.g. out of the session).
    :param max_steps: how many steps to keep.
    """

    def __init__(self, steps: Iterable[dict] | None = None, max_steps: int = MAX_STEPS):
        self.max_steps = max_steps
        self.steps: list[dict] = [dict(s) for s in (steps or [])][-max_steps:]
        self._counter = max((s.get("n", 0) for s in self.steps), default=0)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    def step(
        self,
        title: str,
        explanation: str,
        *,
        request: Mapping[str, Any] | None = None,
        response: Mapping[str, Any] | None = None,
        jwt: Mapping[str, Any] | None = None,
        error: Mapping[str, Any] | None = None,
        checks: list[dict] | None = None,
    ) -> dict:
        """Record one step.

        :param title: a short heading ("Token request").
        :param explanation: plain words for a reader learning the flow.
        :param request: ``{method, url, params?, headers?}``; secrets are redacted here.
        :param response: ``{status, body}``; tokens are shortened here.
        :param jwt: ``{header, claims, checks}`` (see :meth:`add_jwt`).
        :param error: ``{error, description}`` when the step failed.
        :param checks: ``{check, ok, detail}`` dicts for checks that are not about a JWT
            (the callback's ``state``); the list is stored as given, so a caller may
            keep appending to it while the step runs.
        :return: the recorded step (already cleaned).
        """
        self._counter += 1
        entry: dict[str, Any] = {
            "n": self._counter,
            "title": title,
            "explanation": explanation,
            "at": int(time.time()),
        }
        if request is not None:
            url = redact_url(str(request.get("url", "")))
            if len(url) > MAX_URL:
                url = url[:MAX_URL] + f"…({len(url)} chars)"
            req = {"method": request.get("method", "GET"), "url": url}
            for part in ("params", "headers"):
                if request.get(part):
                    req[part] = redact(request[part])
            entry["request"] = req
            if request.get("proof"):
                # The request's DPoP proof (RFC 9449 §4), decoded, with the checks a server runs on it;
                # a list of {label, header, claims, checks}, the shape the SPA's inspector shows too.
                entry["proofs"] = [{"label": "DPoP proof", **_clean_jwt(request["proof"])}]
        if response is not None:
            entry["response"] = {"status": response.get("status"), "body": _clean_body(response.get("body"))}
        if jwt is not None:
            entry["jwt"] = _clean_jwt(jwt)
        if checks is not None:
            entry["checks"] = checks
        if error is not None:
            entry["error"] = {
                "error": str(error.get("error", "error"))[:MAX_TEXT],
                "description": str(error.get("description", ""))[: 4 * MAX_TEXT],
            }
        self.steps.append(_fit(entry))
        del self.steps[: -self.max_steps]
        return entry

    def add_jwt(
        self,
        token: str,
        checks: Iterable[Mapping[str, Any]],
        *,
        title: str | None = None,
        explanation: str | None = None,
    ) -> dict:
        """Attach a decoded JWT and its validation checks to the last step (or a new one).

        :param token: the JWT (decoded here without verification, for display).
        :param checks: ``{check, ok, detail}`` dicts, passed and failed.
        :param title: when given, a new step is recorded with this title.
        :param explanation: the new step's explanation.
        :return: the step the JWT was attached to.
        """
        try:
            header, claims = decode_unverified(token)
        except ValueError as exc:
            header, claims = {}, {"(not a JWT)": str(exc)}
        jwt = {"token": token, "header": header, "claims": claims, "checks": list(checks)}
        if title is not None or not self.steps:
            return self.step(title or "Token", explanation or "A token was decoded.", jwt=jwt)
        self.steps[-1]["jwt"] = _clean_jwt(jwt)
        return _fit(self.steps[-1])

    def fail(self, title: str, error: Any) -> dict:
        """Record that a step failed (a :class:`common.errors.FlowError` or text)."""
        code = getattr(error, "error", "error")
        description = getattr(error, "description", str(error))
        return self.step(
            title,
            "This step failed, so the flow stopped here.",
            error={"error": code, "description": description},
        )

    def clear(self) -> None:
        """Forget every step (at sign-out)."""
        self.steps.clear()

    def replace_steps(self, steps: Iterable[dict] | None) -> None:
        """Take ``steps`` (:meth:`to_list` output) instead of ours: a newer copy of this log."""
        fresh = FlowLog.from_list(steps, self.max_steps)
        self.steps, self._counter = fresh.steps, fresh._counter

    def to_list(self) -> list[dict]:
        """The steps as plain JSON-able data (for the session)."""
        return [dict(s) for s in self.steps]

    @classmethod
    def from_list(cls, steps: Iterable[dict] | None, max_steps: int = MAX_STEPS) -> "FlowLog":
        """Rebuild a log from :meth:`to_list` output (tolerates ``None``)."""
        return cls([s for s in (steps or []) if isinstance(s, dict)], max_steps=max_steps)

    def render_text(self) -> str:
        """The steps as plain text for a terminal (``--explain``)."""
        lines: list[str] = []
        for s in self.steps:
            title = str(s.get("title"))
            lines.append(f"── Step {s.get('n')}: {title} " + "─" * max(0, 50 - len(title)))
            lines.append(f"   {s.get('explanation', '')}")
            req = s.get("request")
            if req:
                lines.append(f"   → {req.get('method')} {req.get('url')}")
                for part in ("headers", "params"):
                    for k, v in (req.get(part) or {}).items():
                        lines.append(f"       {k}: {v}")
            resp = s.get("response")
            if resp:
                lines.append(f"   ← HTTP {resp.get('status')}")
                body = resp.get("body")
                if body not in (None, "", {}):
                    text = body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False)
                    lines.extend("       " + line for line in text.splitlines())
            for proof in s.get("proofs") or []:
                lines.append(f"   DPoP proof header: {json.dumps(proof.get('header'), ensure_ascii=False)}")
                lines.append(f"   DPoP proof claims: {json.dumps(proof.get('claims'), ensure_ascii=False)}")
                for check in proof.get("checks", []):
                    lines.append(
                        f"     {'✔' if check.get('ok') else '✘'} {check.get('check')}: {check.get('detail')}"
                    )
            for check in s.get("checks") or []:
                mark = "✔" if check.get("ok") else "✘"
                lines.append(f"     {mark} {check.get('check')}: {check.get('detail')}")
            jwt = s.get("jwt")
            if jwt:
                lines.append(f"   JWT header: {json.dumps(jwt.get('header'), ensure_ascii=False)}")
                lines.append(f"   JWT claims: {json.dumps(jwt.get('claims'), ensure_ascii=False)}")
                for check in jwt.get("checks", []):
                    mark = "✔" if check.get("ok") else "✘"
                    lines.append(f"     {mark} {check.get('check')}: {check.get('detail')}")
            err = s.get("error")
            if err:
                lines.append(f"   ✘ {err.get('error')}: {err.get('description')}")
            lines.append("")
        return "\n".join(lines)


def _clean_body(body: Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        return body[:MAX_TEXT] + (f"…({len(body)} chars)" if len(body) > MAX_TEXT else "")
    return _clean(body)


def _clean_jwt(jwt: Mapping[str, Any]) -> dict:
    out = {
        "header": _clean(dict(jwt.get("header") or {})),
        "claims": _clean(dict(jwt.get("claims") or {})),
        "checks": [
            # A detail may quote the token (its kid, its iss): cut like any text.
            {
                "check": str(c.get("check"))[:MAX_TEXT],
                "ok": bool(c.get("ok")),
                "detail": _clean(str(c.get("detail", ""))),
            }
            for c in (jwt.get("checks") or [])
        ],
    }
    if jwt.get("token"):
        out["token"] = shorten(jwt["token"])
    return out
