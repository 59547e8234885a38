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


def test_the_client_keeps_a_create_uploads_within_the_part_urls_a_request_is_handed() -> None:
    """The client cannot know the server's multipart threshold, so it counts every file as if it went
    in parts of the least size: never fewer parts than the server makes of it, at any threshold."""
    from documents.upload import part_count
    from graphlake_client import uploads as client
    from services.uploads import sessions

    assert (client.MAX_PART_URLS, client.MIN_PART_BYTES) == (sessions.MAX_PART_URLS, sessions.MIN_PART)
    for threshold in (1, MIB, 8 * MIB, 64 * MIB, 5 * 1024**4):
        for size in (0, 1, 8 * MIB - 1, 8 * MIB, 8 * MIB + 1, 64 * MIB, 10 * 1024**3, 80 * 1024**3, 5 * 1024**4):
            assert client.part_urls_at_most(size) >= part_count(size, part_size_for(size, threshold)), (size, threshold)
    gib = 1024**3
    # 40 GiB: 5,120 parts at most; two do not fit in one request, a small file beside one does.
    assert client.within_part_urls([40 * gib, 40 * gib, 1, 30 * gib, 5 * 1024**4]) == [range(0, 1), range(1, 4), range(4, 5)]
    assert client.within_part_urls([1] * 3) == [range(0, 3)] and client.within_part_urls([]) == []
