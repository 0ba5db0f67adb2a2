"""The health check's hand-made codec against grpcio-health-checking's generated messages, and
the verdicts drawn from an answer or a failed check."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from gproxy_mp.bus.schema import BackendCondition
from gproxy_mp.worker.health import (
    NO_HEALTH_SERVICE,
    Serving,
    Verdict,
    decode_status,
    describe_change,
    encode_request,
    judge_answer,
    judge_error,
)


@pytest.mark.parametrize("service", ["", "shop.Cart", "ü" * 200])
def test_a_request_is_what_the_generated_code_reads(service: str) -> None:
    parsed = health_pb2.HealthCheckRequest.FromString(encode_request(service))
    assert parsed.service == service
    assert encode_request(service) == health_pb2.HealthCheckRequest(
        service=service).SerializeToString()


@pytest.mark.parametrize("status", list(Serving))
def test_every_status_the_generated_code_writes_is_read(status: Serving) -> None:
    data = health_pb2.HealthCheckResponse(status=status.value).SerializeToString()
    assert decode_status(data) is status


def test_unknown_fields_are_skipped_and_an_unknown_status_is_unknown() -> None:
    extra = b"\x12\x03abc" + b"\x19" + b"\0" * 8 + b"\x25\0\0\0\0"  # fields 2, 3, 4
    assert decode_status(extra + b"\x08\x01") is Serving.SERVING
    assert decode_status(b"\x08\x09") is Serving.UNKNOWN
    assert decode_status(b"") is Serving.UNKNOWN  # proto3: an absent enum is its zero


@pytest.mark.parametrize("data", [b"\x08", b"\x12\x05ab", b"\x08\xff\xff\xff\xff\xff\xff\xff\xff"
                                  b"\xff\xff\xff", b"\x0b"])
def test_bytes_that_are_not_a_response_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_status(data)


VERDICTS_OF_ANSWERS = [
    pytest.param(Serving.SERVING, None, id="serving"),
    pytest.param(Serving.NOT_SERVING, BackendCondition.NOT_SERVING, id="not-serving"),
    pytest.param(Serving.UNKNOWN, BackendCondition.NOT_SERVING, id="unknown"),
    pytest.param(Serving.SERVICE_UNKNOWN, BackendCondition.UNKNOWN_SERVICE, id="service-unknown"),
]


@pytest.mark.parametrize(("status", "condition"), VERDICTS_OF_ANSWERS)
def test_an_answer_is_judged_by_its_status(status: Serving,
                                           condition: BackendCondition | None) -> None:
    data = health_pb2.HealthCheckResponse(status=status.value).SerializeToString()
    assert judge_answer(data).condition is condition


def test_an_unreadable_answer_is_failing() -> None:
    verdict = judge_answer(b"\x0f")
    assert verdict.condition is BackendCondition.FAILING
    assert "unreadable answer" in verdict.why


VERDICTS_OF_ERRORS = [  # (status code of the check, condition, words the log line carries)
    pytest.param("UNIMPLEMENTED", None, "no health service", id="no-health-service"),
    pytest.param("NOT_FOUND", BackendCondition.UNKNOWN_SERVICE, "unknown service",
                 id="service-not-known-there"),
    pytest.param("UNAVAILABLE", BackendCondition.FAILING, "UNAVAILABLE", id="refused"),
    pytest.param("DEADLINE_EXCEEDED", BackendCondition.FAILING, "DEADLINE_EXCEEDED",
                 id="stopped-or-hung"),
    pytest.param("PERMISSION_DENIED", BackendCondition.FAILING, "PERMISSION_DENIED",
                 id="other"),
]


@pytest.mark.parametrize(("code", "condition", "words"), VERDICTS_OF_ERRORS)
def test_a_failed_check_is_judged_by_its_code(code: str, condition: BackendCondition | None,
                                              words: str) -> None:
    verdict = judge_error(code, "details")
    assert verdict.condition is condition
    assert words in verdict.why


PASS = Verdict(None, "SERVING")
NOT_SERVING = Verdict(BackendCondition.NOT_SERVING, "NOT_SERVING")
UNKNOWN = Verdict(BackendCondition.UNKNOWN_SERVICE, "unknown service (NOT_FOUND: x)")

CHANGES = [  # before, after → words of the line logged (None: nothing logged)
    pytest.param(None, PASS, None, id="first-pass"),
    pytest.param(PASS, PASS, None, id="still-passing"),
    pytest.param(None, NO_HEALTH_SERVICE, "no health service", id="no-health-service-once"),
    pytest.param(NO_HEALTH_SERVICE, NO_HEALTH_SERVICE, None, id="no-health-service-again"),
    pytest.param(None, UNKNOWN, "health check failed (unknown service", id="first-failure"),
    pytest.param(UNKNOWN, UNKNOWN, None, id="failing-again"),
    pytest.param(UNKNOWN, NOT_SERVING, "still failing, now not_serving", id="new-cause"),
    pytest.param(NOT_SERVING, PASS, "health check passed (SERVING): back in the pick",
                 id="passes-again"),
]


@pytest.mark.parametrize(("before", "after", "words"), CHANGES)
def test_a_verdict_is_logged_once_per_change_never_per_check(
        before: Verdict | None, after: Verdict, words: str | None) -> None:
    change = describe_change(before, after)
    if words is None:
        assert change is None
    else:
        assert change is not None and words in change[1], change
