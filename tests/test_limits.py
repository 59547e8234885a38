"""Request limits: each one exceeded gets a clear error, and the server keeps serving. What the schema
does with its limits, and the document memo, without a server: tests/unit/test_limits.py."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from graphlake.settings import Settings
from resolvers.schema import build_schema
from tests.conftest import Served
from tests.operations import Api
from tests.validations import count_validations
from tests.ws_client import Subscriber


async def still_serving(api: Api, token: str) -> None:
    assert (await api.data("Status", token=token))["health"]["ok"] is True


async def test_query_depth(api: Api, viewer: str, settings: Settings) -> None:
    # apiTokens > edges > node > name is 3 deep (the root field is depth 0): a schema limited to 2
    # must refuse it. (Strawberry's depth limit skips introspection fields; the token limit bounds those.)
    shallow = build_schema(settings.model_copy(update={"max_query_depth": 2}))
    result = await shallow.execute("query Deep { apiTokens { edges { node { name } } } }")
    assert len(result.errors) == 1
    assert result.errors[0].message == ("'Deep' exceeds maximum operation depth of 2 "
                                        "(the server's limit: GRAPHLAKE_MAX_QUERY_DEPTH)")
    assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"
    ok = await shallow.execute("{ __typename }")
    assert not ok.errors and ok.data == {"__typename": "Query"}  # shallow queries still pass
    await still_serving(api, viewer)


async def test_aliases(api: Api, viewer: str, settings: Settings) -> None:
    many = "{ " + " ".join(f"a{i}: health {{ ok }}" for i in range(settings.max_aliases + 1)) + " }"
    error = await api.error(None, query=many, token=viewer)  # type: ignore[arg-type]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "aliases" in error["message"] and "GRAPHLAKE_MAX_ALIASES" in error["message"]
    await still_serving(api, viewer)


async def test_tokens(api: Api, viewer: str, settings: Settings) -> None:
    long = "{ " + "health { ok } " * (settings.max_tokens // 4 + 1) + "}"
    error = await api.error(None, query=long, token=viewer)  # type: ignore[arg-type]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "token" in error["message"].lower()
    await still_serving(api, viewer)


async def test_the_issues_document_is_refused_before_it_is_parsed_whole(api: Api, viewer: str, settings: Settings,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """#16: 14 KB of one field repeated held the event loop 2 s in validation; now parsing stops at the token limit."""
    validations = count_validations(monkeypatch)
    repeated = "{ " + "me { role } " * 1200 + "}"
    assert len(repeated) > 14_000
    error = await api.error(None, query=repeated, token=viewer)  # type: ignore[arg-type]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "token" in error["message"].lower()
    assert validations == []
    await still_serving(api, viewer)


async def test_too_many_selections_are_refused_unvalidated(api: Api, viewer: str, settings: Settings,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    validations = count_validations(monkeypatch)
    wide = "{ health { " + "database " * settings.max_selections + "} }"  # one more with `health`
    error = await api.error(None, query=wide, token=viewer)  # type: ignore[arg-type]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert f"more than {settings.max_selections}" in error["message"] and "GRAPHLAKE_MAX_SELECTIONS" in error["message"]
    assert validations == []
    await still_serving(api, viewer)


async def test_repeated_fields_stop_validation_at_the_merge_budget(api: Api, viewer: str, settings: Settings) -> None:
    """Within the token and selection limits, repeating a field still makes graphql-core compare every pair
    (quadratic); GRAPHLAKE_MAX_MERGE_COST stops it, as a BAD_USER_INPUT naming the setting. The figures
    for the worst documents under the limits are in bench/validation.py."""
    repeated = "{ " + "me { role } " * (settings.max_selections // 2) + "}"
    fragments = "".join(f"fragment F{i} on Query {{ me {{ role }} }} " for i in range(settings.max_selections // 3))
    spread = "{ " + " ".join(f"...F{i}" for i in range(settings.max_selections // 3)) + " } " + fragments
    for document in (repeated, spread):
        error = await api.error(None, query=document, token=viewer)  # type: ignore[arg-type]
        assert error["extensions"] == {"code": "BAD_USER_INPUT"}
        assert "GRAPHLAKE_MAX_MERGE_COST" in error["message"]
    fewer = "{ " + "me { role } " * 20 + "}"  # the same field a few times is fine
    assert (await api.run(None, query=fewer, token=viewer))["data"] == {"me": {"role": "VIEWER"}}  # type: ignore[arg-type]
    await still_serving(api, viewer)


async def test_body_size(http: httpx.AsyncClient, api: Api, viewer: str, settings: Settings) -> None:
    padding = "#" + "x" * settings.max_body_bytes + "\n{ health { ok } }"
    response = await http.post("/graphql", json={"query": padding}, headers={"Authorization": f"Bearer {viewer}"})
    assert response.status_code == 413
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert str(settings.max_body_bytes) in error["message"]

    async def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    response = await http.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    await still_serving(api, viewer)


async def test_an_oversized_head_is_refused_early_and_the_server_goes_on(served: Served, settings: Settings) -> None:
    """A header of a MiB, sent by a client with no token a chunk at a time: 431 once the request's
    line and headers pass GRAPHLAKE_MAX_HEADER_BYTES, long before the header ends, and the connection
    closed; the server answers others meanwhile. A head under the bound, its body in the same chunk,
    is served."""
    host, port = served.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent, answer = 0, b""
    try:
        while sent < 1 << 20 and not answer:
            writer.write(b"a" * 16384)
            await writer.drain()
            sent += 16384
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(4096), 0.01)
    except ConnectionError:  # closed under the writer, its answer waiting to be read
        pass
    answer += await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ") and b"GRAPHLAKE_MAX_HEADER_BYTES" in answer, answer[:200]
    assert sent < 4 * settings.max_header_bytes  # refused as it passed the bound, not once the header ended
    async with httpx.AsyncClient(base_url=served.base_url) as client:
        assert (await client.get("/healthz")).status_code == 200
        within = await client.post("/graphql", json={"query": "{ __typename }"}, headers={"X-Fill": "b" * 60_000})
        assert within.status_code == 200


@pytest.mark.parametrize("first", [0, -1, 501])
async def test_page_size(api: Api, admin: str, first: int) -> None:
    error = await api.error("ApiTokens", {"first": first}, token=admin)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}
    assert "between 1 and 500" in error["message"]
    await still_serving(api, admin)


async def test_an_oversized_batch_is_refused_before_anything_is_converted(api: Api, contributor: str, settings: Settings,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A 100,000-item createDatums held the event loop 11 s while it was converted, only to be refused:
    list lengths are checked on the raw variables, before graphql-core coerces them."""
    import graphql.execution.executor as executor

    coerced = []
    coerce = executor.get_variable_values
    monkeypatch.setattr(executor, "get_variable_values", lambda *args, **kwargs: coerced.append(1) or coerce(*args, **kwargs))
    limit = max(settings.max_batch_items, settings.max_events_per_batch)
    error = await api.error("CreateDatums", {"inputs": [{"roles": []}] * (limit + 1)}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs"} and f"at most {limit}" in error["message"]
    assert coerced == []  # refused before coercion
    nested = await api.error("AddToCollection", {"input": {"collectionId": "x", "items": [{"assetId": "y"}] * (limit + 1)}},
                             token=contributor)
    assert nested["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.items"}
    assert coerced == []
    # One datum where the list is declared (graphql-core takes it for a list of one), its roles over the limit.
    lone = await api.error("CreateDatums", {"inputs": {"roles": [{"role": "r", "assetId": "y"}] * (limit + 1)}},
                           token=contributor)
    assert lone["extensions"] == {"code": "BAD_USER_INPUT", "field": "inputs.roles"} and coerced == []


async def test_strings_and_lists_a_query_sends_are_bounded_wherever_they_are(api: Api, viewer: str, settings: Settings) -> None:
    long = "x" * (settings.max_query_string_chars + 1)
    many = [f"T{i}" for i in range(settings.max_query_list_items + 1)]
    refused = [  # (operation, variables, or an ad-hoc document; the field the error names)
        ("Assets", {"filter": {"nameContains": long}}, None, "filter.nameContains"),
        ("Assets", {"filter": {"mediaTypePrefix": long}}, None, "filter.mediaTypePrefix"),
        ("Events", {"filter": {"eventTypes": many}}, None, "filter.eventTypes"),
        ("Events", {"filter": {"data": [{"path": "x", "op": "IN", "value": many}]}}, None, "filter.data[0].value"),
        ("Events", {"filter": {"data": [{"path": "x", "op": "EQ", "value": {"deep": [long]}}]}}, None,
         "filter.data[0].value.deep[0]"),
        (None, None, f'{{ assets(filter: {{nameContains: "{long}"}}) {{ totalCount }} }}', "filter.nameContains"),
        (None, None, "{ events(filter: {eventTypes: [" + ", ".join(f'"{t}"' for t in many) + "]}) { totalCount } }",
         "filter.eventTypes"),
        (None, None, f'query Q($q: String = "{long}") {{ collections(nameContains: $q) {{ totalCount }} }}', "q"),
    ]
    for operation, variables, query, field in refused:
        error = await api.error(operation, variables, token=viewer, query=query)  # type: ignore[arg-type]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, (field, error)
    at_limit = "x" * settings.max_query_string_chars
    assert (await api.data("Assets", {"filter": {"nameContains": at_limit}}, token=viewer))["assets"]["totalCount"] == 0
    await still_serving(api, viewer)


async def test_a_live_subscription_with_an_oversized_filter_is_refused(served: Served, viewer: str, settings: Settings) -> None:
    async with Subscriber(served.ws_url) as subscriber:
        assert (await subscriber.connect({"Authorization": f"Bearer {viewer}"}))["type"] == "connection_ack"
        op_id = await subscriber.subscribe("EventStream", {"filter": {"eventTypes": ["x" * (settings.max_query_string_chars + 1)]}})
        answer = await subscriber.receive()
        assert answer["id"] == op_id and answer["type"] in ("error", "next"), answer
        errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
        assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "filter.eventTypes[0]"}


async def test_mutations_carry_long_strings(api: Api, contributor: str, settings: Settings) -> None:
    # The bound is for reads: a stored text or a description is longer than any search string.
    text = "y" * (settings.max_query_string_chars * 3)
    stored = (await api.data("StoreText", {"input": {"name": "long", "text": text}}, token=contributor))["storeText"]
    assert stored["sizeBytes"] == len(text)


async def test_fragments_spread_again_and_again_are_refused_before_validation(
        api: Api, viewer: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fragment spreads the next five times, nine deep: 551 bytes, 2 million fields written out,
    which Strawberry's depth and alias limits walked for 4.9 s. Refused by count_expanded, unvalidated."""
    validations = count_validations(monkeypatch)
    levels = [f"fragment F{n} on Query {{ " + " ".join([f"...F{n + 1}"] * 5) + " }" for n in range(9)]
    bomb = "query Bomb { ...F0 } " + " ".join(levels) + " fragment F9 on Query { __typename }"
    error = await api.error("Bomb", query=bomb, token=viewer)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}, error
    assert f"more than {settings.max_selections * 10} fields" in error["message"]
    assert "GRAPHLAKE_MAX_SELECTIONS" in error["message"]
    assert validations == []
    # Spread as often as the expanded count allows, it runs.
    small = "query Small { ...F0 } " + " ".join(levels[7:]) + " fragment F9 on Query { __typename }"
    assert (await api.run("Small", query=small.replace("...F0", "...F7"), token=viewer))["data"] == {"__typename": "Query"}
    await still_serving(api, viewer)
