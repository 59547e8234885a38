"""Upload planning without a store: multipart part sizes. Uploads themselves: tests/test_uploads.py."""

from __future__ import annotations

from services.uploads.sessions import part_size_for

MIB = 1024 * 1024


def test_part_sizes_respect_s3_limits() -> None:
    assert part_size_for(10 * MIB, 64 * MIB) is None
    assert part_size_for(64 * MIB, 64 * MIB) == 8 * MIB
    huge = 5 * 1024**4
    size = part_size_for(huge, 64 * MIB)
    assert size % MIB == 0 and size >= 5 * MIB and -(-huge // size) <= 10_000
