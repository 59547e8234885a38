"""graphlake/websocket_handlers._is_subscription: which operations sent on a socket wait for a request
slot (queries and mutations), read within the schema's token limit."""

import uuid

import pytest

from graphlake import websocket_handlers
from graphlake.websocket_handlers import _is_subscription
from resolvers.document_cache import MAX_TEXT


def test_queries_and_mutations_take_a_slot_subscriptions_do_not() -> None:
    assert not _is_subscription("{ me { role } }", None, 2000)
    assert not _is_subscription('mutation M { logEvent(input: {eventType: "X"}) { id } }', "M", 2000)
    assert _is_subscription("subscription S { heartbeat { at } }", None, 2000)
    assert not _is_subscription("query A { me { role } } subscription B { heartbeat { at } }", "A", 2000)
    assert _is_subscription("query A { me { role } } subscription B { heartbeat { at } }", "B", 2000)


def test_what_strawberry_refuses_is_left_to_it() -> None:
    """A document over the token limit (read whole, 2 MB held the loop 16 s), one that does not parse,
    names no operation, or is not text: none is admitted here; Strawberry answers each as before."""
    long_query = "{ " + "me { role } " * 1000 + "}"  # a valid query of some 4,000 tokens
    assert not _is_subscription(long_query, None, 10_000)
    assert _is_subscription(long_query, None, 2000)
    assert _is_subscription("{ me {", None, 2000)
    assert _is_subscription("query A { me { role } }", "B", 2000)
    assert _is_subscription(None, None, 2000) and _is_subscription(7, None, 2000)
    assert _is_subscription("{ me { role } }", 7, 2000)


def test_a_text_sent_again_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[str] = []
    real = websocket_handlers.parse
    monkeypatch.setattr(websocket_handlers, "parse", lambda text, **kw: parses.append(text) or real(text, **kw))
    query = "query Again { me { role } } # " + uuid.uuid4().hex  # a text this process has not seen
    for _ in range(3):
        assert not _is_subscription(query, "Again", 2000)
    assert parses == [query]
    huge = "query Long { me { role } } #" + "x" * (MAX_TEXT + 1)  # not kept: parsed every time
    for _ in range(2):
        assert not _is_subscription(huge, "Long", 2000)
    assert parses == [query, huge, huge]
