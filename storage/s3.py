"""S3-compatible mounts (AWS S3, MinIO, GCS through HMAC keys) through aioboto3."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.protocol import StoreUnavailable


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
        connect_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._config = Config(
            s3={"addressing_style": addressing_style},
            # botocore's newer default checksums break presigned uploads to several S3-compatible
            # stores; compute them only where the API requires one.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self._stack = AsyncExitStack()
        self.client: Any = None

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
