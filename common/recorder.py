"""The flow recorder: what the protocol code tells the flow inspector, handed in once.

A :class:`common.client.Client` carries one recorder; every protocol step
run with that client reports to it by step name (the texts live in
:mod:`common.narration`).  The default, :data:`NULL_RECORDER`, records
nothing, so code that has no inspector (the resource server, a test) pays
nothing and passes nothing.

A web app makes one recorder per request around the user's
:class:`common.inspector.FlowLog` (``client.with_recorder(FlowRecorder(log))``);
a command-line app makes one for ``--explain``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

from .errors import FlowError
from .inspector import FlowLog
from .narration import narration


class FlowRecorder:
    """Records named protocol steps in a :class:`~common.inspector.FlowLog` (or nowhere).

    :param log: the log to write to; ``None`` records nothing.
    """

    def __init__(self, log: FlowLog | None = None):
        self.log = log

    def step(
        self,
        step: str,
        *,
        request: Mapping[str, Any] | None = None,
        response: Mapping[str, Any] | None = None,
        checks: list[dict] | None = None,
        error: FlowError | None = None,
        **values,
    ) -> None:
        """Record ``step`` (a :data:`common.narration.STEPS` name) with what was sent and received.

        :param checks: checks that are not about a JWT; the list may keep growing after this call.
        :param error: the failure that ended the step, if any.
        :param values: filled into the step's title and explanation.
        """
        if self.log is None:
            return
        title, explanation = narration(step, **values)
        self.log.step(
            title,
            explanation,
            request=request,
            response=response,
            checks=checks,
            error=_error_dict(error) if error is not None else None,
        )

    def token(
        self, step: str, token: str, checks: Iterable[Mapping[str, Any]], error: FlowError | None = None
    ) -> None:
        """Record a JWT (decoded for display) with the checks it passed and, maybe, the one it failed."""
        if self.log is None:
            return
        title, explanation = narration(step)
        self.log.add_jwt(token, checks, title=title, explanation=explanation)
        if error is not None:
            self.log.steps[-1]["error"] = _error_dict(error)

    def failure(self, step: str, error: FlowError, **values) -> None:
        """Record that ``step`` failed with ``error``.

        On the step itself when it is the last one recorded (and has no error
        yet), otherwise as a step of its own.
        """
        if self.log is None:
            return
        title, _ = narration(step, **values)
        last = self.log.steps[-1] if self.log.steps else None
        if last is not None and last.get("title") == title and "error" not in last:
            last["error"] = _error_dict(error)
        else:
            self.log.fail(title, error)

    @contextmanager
    def failures(self, step: str) -> Iterator[None]:
        """Record a :class:`~common.errors.FlowError` raised inside as a failure of ``step``; re-raise it."""
        try:
            yield
        except FlowError as error:
            self.failure(step, error)
            raise


def _error_dict(error: FlowError) -> dict:
    return {"error": error.error, "description": error.description}


#: The recorder of code that keeps no flow log.
NULL_RECORDER = FlowRecorder()
