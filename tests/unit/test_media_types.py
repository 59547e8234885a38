"""Which answer a client's Accept header asks for (graphlake/graphql_http.py): JSON, the spec's
graphql-response+json, or a stream of Server-Sent Events."""

from __future__ import annotations

import pytest

from graphlake.graphql_http import wants_event_stream

URQL = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"


@pytest.mark.parametrize(("accept", "stream"), [
    ("text/event-stream", True),  # the graphql-sse client
    (URQL, False),  # lists JSON first: it wants JSON for a query
    ("text/event-stream, application/json", True),
    ("application/json;q=0.5, text/event-stream", True),
    ("text/event-stream;q=0.2, application/json", False),
    ("text/event-stream;q=0", False),
    ("application/json", False),
    ("*/*", False),
    ("", False),
])
def test_a_stream_only_when_no_json_type_is_preferred_to_it(accept: str, stream: bool) -> None:
    assert wants_event_stream(accept) is stream
