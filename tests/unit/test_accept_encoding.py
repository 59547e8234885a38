"""graphlake/compression.acceptable_codings: the codings a client refuses are left out, and only short
headers are kept parsed (a client chooses the header: long ones would pin memory in the cache)."""

from __future__ import annotations

from graphlake import compression


def test_refused_codings_are_left_out_and_a_header_nothing_refuses_is_kept_as_sent() -> None:
    assert compression.acceptable_codings("gzip;q=0, br") == "br"
    assert compression.acceptable_codings("gzip, br;q=0.5") == "gzip, br;q=0.5"
    assert compression.acceptable_codings("br;q=nope, gzip") == "gzip"


def test_only_short_headers_are_kept_in_the_cache() -> None:
    compression._cached_codings.cache_clear()
    compression.acceptable_codings("gzip, deflate, br")
    long = "gzip;q=0, " + ", ".join(f"x-{n}" for n in range(100))
    assert len(long) > compression.CACHED_HEADER_CHARS
    assert compression.acceptable_codings(long) == ", ".join(f"x-{n}" for n in range(100))
    assert compression._cached_codings.cache_info().currsize == 1
