"""Downloads against the running test server: a name too long for a file system."""

from __future__ import annotations

from pathlib import Path

from graphlake_client.downloads import NAME_MAX_BYTES
from tests.conftest import Served
from tests.test_client import client


async def test_a_name_too_long_for_the_file_system_is_trimmed(served: Served, contributor: str, tmp_path: Path) -> None:
    """The server takes names of 500 characters; a file system takes 255 bytes (é is two)."""
    name = "é" * 50 + "a" * 160 + ".bin"  # 214 characters, 264 bytes
    source = tmp_path / "source.bin"
    source.write_bytes(b"long")
    out = tmp_path / "out"
    out.mkdir()
    async with client(served, contributor, tmp_path) as lake:
        asset = await lake.upload_file(source, name=name)
        saved = await lake.download(asset["id"], out)
    assert saved.parent == out and saved.read_bytes() == b"long"
    assert len(saved.name.encode()) <= NAME_MAX_BYTES and saved.name.startswith("é" * 50) and saved.suffix == ".bin"
