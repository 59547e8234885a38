"""S3-compatible mounts (AWS S3, MinIO, GCS through HMAC keys) through aioboto3.

Clients upload with presigned URLs. A declared SHA-256 is signed into a single PUT as
`x-amz-checksum-sha256`, so the store itself refuses other bytes; multipart objects carry no
whole-object SHA-256, so `sha256()` reads them back as a stream.
"""

from __future__ import annotations

import base64
import hashlib
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.protocol import ObjectInfo, SignedRequest, StoredPart, StoreUnavailable

CHUNK = 1024 * 1024


def _b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class S3Store:
    backend = "s3"

    def __init__(
        self,
        name: str,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str = "path",
        fallback: str | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.fallback = fallback
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._config = Config(
            s3={"addressing_style": addressing_style},
            signature_version="s3v4",
            # botocore's newer default checksums break presigned uploads to several S3-compatible
            # stores; compute them only where the API requires one.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self._stack = AsyncExitStack()
        self.client: Any = None

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    async def open(self) -> None:
        self.client = await self._stack.enter_async_context(
            self._session.client("s3", endpoint_url=self.endpoint_url, config=self._config)
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self.client = None

    async def check(self) -> None:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "?")
            raise StoreUnavailable(f"s3 mount {self.name!r}: bucket {self.bucket!r} answered {code}") from error
        except (BotoCoreError, OSError) as error:
            raise StoreUnavailable(f"s3 mount {self.name!r} at {self.endpoint_url or 'AWS'}: {error}") from error

    # --- signed URLs
    async def sign_put(self, key: str, *, size: int, content_type: str, sha256: str | None,
                       expires_in: int) -> SignedRequest:
        params = {"Bucket": self.bucket, "Key": self.object_key(key), "ContentType": content_type}
        headers = {"Content-Type": content_type}
        if sha256:
            params["ChecksumSHA256"] = _b64_sha256(sha256)
            headers["x-amz-checksum-sha256"] = params["ChecksumSHA256"]
        url = await self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        return SignedRequest(url=url, headers=headers)

    async def sign_get(self, key: str, *, filename: str, content_type: str | None, expires_in: int,
                       bucket: str | None = None) -> str:
        # `key` is the full object key for external objects (another bucket), else ours.
        params = {
            "Bucket": bucket or self.bucket,
            "Key": key if bucket else self.object_key(key),
            "ResponseContentDisposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        }
        if content_type:
            params["ResponseContentType"] = content_type
        return await self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    # --- multipart
    async def start_multipart(self, key: str, *, content_type: str) -> str:
        answer = await self.client.create_multipart_upload(Bucket=self.bucket, Key=self.object_key(key),
                                                           ContentType=content_type)
        return answer["UploadId"]

    async def sign_part(self, key: str, upload_id: str, number: int, *, size: int, offset: int,
                        expires_in: int) -> SignedRequest:
        url = await self.client.generate_presigned_url(
            "upload_part", ExpiresIn=expires_in,
            Params={"Bucket": self.bucket, "Key": self.object_key(key), "UploadId": upload_id, "PartNumber": number},
        )
        return SignedRequest(url=url)

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        parts: list[StoredPart] = []
        marker = 0
        while True:  # up to 1,000 parts an answer
            try:
                answer = await self.client.list_parts(Bucket=self.bucket, Key=self.object_key(key), UploadId=upload_id,
                                                      PartNumberMarker=marker)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    return []
                raise
            parts += [StoredPart(number=p["PartNumber"], etag=p["ETag"], size=p["Size"]) for p in answer.get("Parts", [])]
            if not answer.get("IsTruncated"):
                return parts
            marker = answer["NextPartNumberMarker"]

    async def complete_multipart(self, key: str, upload_id: str, parts: list[StoredPart]) -> None:
        await self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.object_key(key), UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in sorted(parts, key=lambda p: p.number)]},
        )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            await self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.object_key(key), UploadId=upload_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    # --- objects
    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=self.object_key(key), ChecksumMode="ENABLED")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        checksum = head.get("ChecksumSHA256")
        # A multipart object's checksum is a checksum of part checksums ("...-N"), not the object's.
        sha256 = base64.b64decode(checksum).hex() if checksum and "-" not in checksum else None
        return ObjectInfo(size=head["ContentLength"], sha256=sha256)

    async def sha256(self, key: str) -> str:
        answer = await self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        digest = hashlib.sha256()
        body = answer["Body"]
        try:
            async for chunk in body.iter_chunks(CHUNK):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest()

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    async def list_objects(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        """Every object under `prefix` in `bucket` (for registering external data in place)."""
        objects: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            objects += [o for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        return objects
