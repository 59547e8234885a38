"""storage.sigv4 signs exactly as botocore does, for every kind of URL the S3 mount hands out.

The comparison is exact: same path, same query parameters, same signature, at the instant
botocore signed (read back from its URL). MinIO accepting these URLs is covered by the upload
and download tests, which run against it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.config import Config

from storage.sigv4 import PROBE_KEY, Credentials, Endpoint, presign

KEYS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def botocore_client(*, endpoint_url: str | None, region: str, style: str, token: str | None = None):
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=KEYS.access_key,
        aws_secret_access_key=KEYS.secret_key, aws_session_token=token,
        config=Config(s3={"addressing_style": style}, signature_version="s3v4",
                      request_checksum_calculation="when_required", response_checksum_validation="when_required"))


def signed_at(url: str) -> datetime:
    return datetime.strptime(dict(parse_qsl(urlsplit(url).query))["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def same_url(ours: str, theirs: str) -> None:
    a, b = urlsplit(ours), urlsplit(theirs)
    assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
    assert dict(parse_qsl(a.query)) == dict(parse_qsl(b.query))


CASES = {
    "put with content type and checksum": (
        "put_object", {"Key": "assets/6b04 a+b~c/é.bin", "ContentType": "text/plain; charset=utf-8",
                       "ChecksumSHA256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="},
        {"method": "PUT", "headers": {"Content-Type": "text/plain; charset=utf-8",
                                      "x-amz-checksum-sha256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}}),
    "get with a download name": (
        "get_object", {"Key": "assets/x", "ResponseContentDisposition": "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9 (1).pdf",
                       "ResponseContentType": "application/pdf"},
        {"method": "GET", "params": {"response-content-disposition": "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9 (1).pdf",
                                     "response-content-type": "application/pdf"}}),
    "part of a multipart upload": (
        "upload_part", {"Key": "assets/big", "UploadId": "2~abc/def+ghi==", "PartNumber": 17},
        {"method": "PUT", "params": {"uploadId": "2~abc/def+ghi==", "partNumber": "17"}}),
    "head with checksum mode": (
        "head_object", {"Key": "assets/x", "ChecksumMode": "ENABLED"},
        {"method": "HEAD", "headers": {"x-amz-checksum-mode": "ENABLED"}}),
}

PLACES = {
    "minio, path addressing": {"endpoint_url": "http://127.0.0.1:9000", "region": "us-east-1", "style": "path"},
    "aws, virtual hosts": {"endpoint_url": None, "region": "eu-west-1", "style": "virtual"},
    "custom https endpoint, temporary credentials": {"endpoint_url": "https://s3.example.org", "region": "auto",
                                                     "style": "path", "token": "FQoGZXIvYXdzE//token+="},
}


@pytest.mark.parametrize("place", PLACES.values(), ids=PLACES.keys())
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_urls_are_signed_exactly_as_botocore_signs_them(case: tuple, place: dict) -> None:
    client = botocore_client(**place)
    operation, params, ours = case
    theirs = client.generate_presigned_url(operation, Params={"Bucket": "lab-data", **params}, ExpiresIn=900)
    endpoint = Endpoint.from_url(client.generate_presigned_url("get_object", Params={"Bucket": "lab-data", "Key": PROBE_KEY}))
    credentials = KEYS._replace(token=place.get("token"))
    url = presign(endpoint, params["Key"], credentials, expires_in=900, now=signed_at(theirs), **ours)
    same_url(url, theirs)


def test_a_changed_url_no_longer_matches() -> None:
    """The comparison above can fail: one byte of key, one second of expiry, another secret."""
    client = botocore_client(endpoint_url="http://127.0.0.1:9000", region="us-east-1", style="path")
    theirs = client.generate_presigned_url("get_object", Params={"Bucket": "lab-data", "Key": "a"}, ExpiresIn=900)
    endpoint = Endpoint.from_url(client.generate_presigned_url("get_object", Params={"Bucket": "lab-data", "Key": PROBE_KEY}))
    at = signed_at(theirs)
    for key, credentials, expires in [("b", KEYS, 900), ("a", KEYS, 901), ("a", KEYS._replace(secret_key="x"), 900)]:
        with pytest.raises(AssertionError):
            same_url(presign(endpoint, key, credentials, method="GET", expires_in=expires, now=at), theirs)
    same_url(presign(endpoint, "a", KEYS, method="GET", expires_in=900, now=at), theirs)


def test_an_endpoint_is_read_from_where_botocore_puts_the_probe_key() -> None:
    assert Endpoint.from_url(f"https://lab-data.s3.eu-west-1.amazonaws.com/{PROBE_KEY}?X-Amz-Credential="
                             "AK%2F20260101%2Feu-west-1%2Fs3%2Faws4_request") == \
        Endpoint("https", "lab-data.s3.eu-west-1.amazonaws.com", "", "eu-west-1")
    with pytest.raises(ValueError, match="probe key"):
        Endpoint.from_url("http://127.0.0.1:9000/lab-data/other?X-Amz-Credential=AK%2Fd%2Fr%2Fs3%2Faws4_request")
