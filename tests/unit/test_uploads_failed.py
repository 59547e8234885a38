"""UploadsFailed (graphlake_client/errors.py): what a caller learns from a batch that failed in part."""

from __future__ import annotations

from graphlake_client.errors import GraphlakeClientError, UploadsFailed

REFUSED = GraphlakeClientError("the store refuses this server's requests", "UNAVAILABLE", retry=False)
PASSING = GraphlakeClientError("the database did not answer", "UNAVAILABLE")


def test_a_batch_whose_every_failure_no_retry_mends_says_so() -> None:
    failed = UploadsFailed({"b.csv": REFUSED, "a.csv": REFUSED}, total=3)
    assert failed.retry is False and failed.field == "a.csv" and failed.code == "UNAVAILABLE"
    assert list(failed.failures) == ["a.csv", "b.csv"]


def test_a_batch_with_one_failure_a_rerun_may_mend_may_be_retried() -> None:
    assert UploadsFailed({"a.csv": REFUSED, "b.csv": PASSING}, total=2).retry is True
