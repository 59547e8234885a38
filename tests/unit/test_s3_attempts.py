"""What an S3 mount's readiness check keeps of its attempts (storage/s3._attempt_failed), so that one
cut short by its deadline between botocore's retries says what they met (tests/test_s3_failures.py
checks a refused connection end to end)."""

from __future__ import annotations

from types import SimpleNamespace

from storage import s3


def test_a_check_keeps_what_its_current_requests_failed_attempts_met() -> None:
    kept = s3._failed_attempts.set([])
    try:
        s3._attempt_failed(caught_exception=ConnectionRefusedError("refused"))
        s3._attempt_failed(response=(SimpleNamespace(status_code=503), {}))
        assert s3._failed_attempts.get() == ["refused", "the store answered HTTP 503"]
        # An attempt answered (the request done): the next request starts afresh, so a later hang is
        # not blamed on a refusal already got over.
        s3._attempt_failed(response=(SimpleNamespace(status_code=200), {}))
        assert s3._failed_attempts.get() == []
        s3._attempt_failed(response=(SimpleNamespace(status_code=404), {}))  # an answer, if not a welcome one
        assert s3._failed_attempts.get() == []
    finally:
        s3._failed_attempts.reset(kept)


def test_outside_a_check_nothing_is_kept() -> None:
    assert s3._failed_attempts.get() is None
    s3._attempt_failed(caught_exception=ConnectionRefusedError("refused"))  # every request's attempts: ignored
    assert s3._failed_attempts.get() is None
