"""The flow recorder (common/recorder.py) and its one table of texts (common/narration.py)."""

from __future__ import annotations

import pytest

from common.errors import FlowError
from common.inspector import FlowLog
from common.narration import STEPS, narration
from common.recorder import NULL_RECORDER, FlowRecorder


def test_the_null_recorder_records_nothing():
    NULL_RECORDER.step("callback", request={"method": "GET", "url": "https://app.test/cb"})
    NULL_RECORDER.failure("callback", FlowError("state_missing", "no state"))
    assert NULL_RECORDER.log is None


def test_a_step_takes_its_title_and_explanation_from_the_table():
    log = FlowLog()
    FlowRecorder(log).step(
        "token_request.refresh",
        request={"method": "POST", "url": "https://issuer.test/t", "params": {"refresh_token": "r" * 40}},
    )
    title, explanation = STEPS["token_request.refresh"]
    assert log.steps[-1]["title"] == title and log.steps[-1]["explanation"] == explanation
    assert "r" * 40 not in str(log.to_list())  # the inspector's redaction still applies


def test_a_failure_lands_on_its_step_or_on_a_step_of_its_own():
    log = FlowLog()
    recorder = FlowRecorder(log)
    recorder.step("callback")
    recorder.failure("callback", FlowError("state_mismatch", "not ours"))
    assert len(log) == 1
    assert log.steps[-1]["error"] == {"error": "state_mismatch", "description": "not ours"}
    with pytest.raises(FlowError):
        with recorder.failures("token_response"):
            raise FlowError("invalid_id_token", "no ID token")
    assert log.steps[-1]["title"] == "Token response"
    assert log.steps[-1]["error"]["error"] == "invalid_id_token"


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_text_of_the_table_can_be_filled_in(step):
    values = {
        "url": "https://api.test/x",
        "expires_in": "soon",
        "max_expires_in": 1,
        "seconds": 3,
        "number": 1,
        "pause": 0.5,
        "reason": "down.",
        "auth_method": "client_secret_basic",
        "scope": "customScope",
    }
    title, explanation = narration(step, **values)
    assert title and "{" not in title and "{" not in explanation
