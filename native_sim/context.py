"""What every command of the native-app simulator shares: its context and how it fails.

A command takes a :class:`Context` (settings, token store, flow log, output
streams) and returns an exit code, or raises :class:`CommandError` with a
one-line message and the exit code that says what kind of failure it was.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from common.config import Settings
from common.inspector import FlowLog
from common.recorder import FlowRecorder

from .storage import TokenStore

# -- exit codes (documented in ``--help``): 0-3 are common.cli's ------------
EXIT_TIMEOUT = 4  # the user never finished signing in
EXIT_SIGNED_OUT = 5  # not signed in, or the refresh token expired / was revoked

#: How the stored record names the two clients.
NATIVE, TRUSTED = "native", "trusted"

LOGIN_AGAIN = "Run `python -m native_sim login` to sign in again."

#: The shared steps the native app tells in its own words (``native.*`` in :mod:`common.narration`):
#: a public client, no server, no client authentication, and a logout that revokes both tokens.
NATIVE_STEPS = {
    "authorization_request": "native.authorization_request",
    "callback": "native.callback",
    "token_request.authorization_code": "native.token_request.authorization_code",
    "token_request.refresh": "native.token_request.refresh",
    "revocation": "native.revocation",
}

#: ``call-api`` refreshes because the access token has expired, not because the user asked.
EXPIRED_REFRESH_STEPS = {**NATIVE_STEPS, "token_request.refresh": "native.token_request.refresh_expired"}


class NativeRecorder(FlowRecorder):
    """A :class:`FlowRecorder` that narrates some shared steps with the native app's texts.

    :param steps: shared step name -> the native step name to narrate it with.
    """

    def __init__(self, log: FlowLog | None, steps: dict[str, str]):
        super().__init__(log)
        self.steps = steps

    def step(self, step: str, **details) -> None:
        """Record ``step`` under its native name, when it has one."""
        super().step(self.steps.get(step, step), **details)

    def token(self, step: str, token: str, checks, error=None) -> None:
        """Record a JWT under the step's native name, when it has one."""
        super().token(self.steps.get(step, step), token, checks, error)

    def failure(self, step: str, error, **values) -> None:
        """Record a failure of ``step`` under its native name, when it has one."""
        super().failure(self.steps.get(step, step), error, **values)


class CommandError(Exception):
    """A command failed; ``str(error)`` is the one line shown to the user.

    :param message: one sentence (or two) saying what happened and what to do.
    :param exit_code: one of the ``EXIT_*`` codes.
    :param error: the OAuth error code, when there is one.
    """

    def __init__(self, message: str, exit_code: int, error: str | None = None):
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code
        self.error = error


@dataclass
class Context:
    """What every command needs.

    :param settings: the validated settings.
    :param store: where tokens live between runs.
    :param log: the flow log, when ``--explain`` asked for it.
    """

    settings: Settings
    store: TokenStore
    log: FlowLog | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _explained: int = 0

    def say(self, text: str = "") -> None:
        """A line for the user, flushed at once (tests and pipes read it live)."""
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        """A warning on standard error."""
        print(f"native_sim: warning: {text}", file=self.err, flush=True)

    @property
    def recorder(self) -> FlowRecorder:
        """The flow recorder for ``--explain`` (records nothing without it), in the native app's words."""
        return NativeRecorder(self.log, NATIVE_STEPS)

    def explain(self) -> None:
        """Print the protocol steps recorded since the last call (``--explain``)."""
        if self.log is None:
            return
        fresh = [step for step in self.log.to_list() if step.get("n", 0) > self._explained]
        if fresh:
            self._explained = max(step.get("n", 0) for step in fresh)
            print(FlowLog.from_list(fresh, max_steps=len(fresh)).render_text(), file=self.out, flush=True)
