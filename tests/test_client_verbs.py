"""The Python client's verbs (graphlake_client: assets.py, downloads.py, vault.py, sync.py, logs.py)
against the running test server: what each stores is read back through the API."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from graphlake.app import create_app
from graphlake.settings import Settings
from graphlake_client import (
    Client,
    GraphlakeClientError,
    GraphlakeLogHandler,
    NaiveTime,
    ResumeState,
    SaveConflict,
    SyncClient,
    data,
    join_path,
    json_time,
    metadata,
    value,
)
from graphlake_client import operations as ops
from tests import factories
from tests.conftest import S3Service, Served
from tests.operations import Api
from tests.processes import serving
from tests.transports import Counting
from tests.waiting import wait_for


def client(served: Served, token: str, tmp_path: Path, **options: object) -> Client:
    return Client(served.base_url, token, resume=ResumeState(tmp_path / "resume.json"), **options)


async def test_an_asset_is_looked_up_by_alias_in_one_request(served: Served, api: Api, contributor: str,
                                                             tmp_path: Path) -> None:
    """An alias is not sent as an ID first (a request the server refused, and counted among its errors)."""
    sent = Counting()
    async with client(served, contributor, tmp_path, graphql_transport=sent) as lake:
        note = await lake.store_text("fine", name="note.md")
        await api.data("AddAliases", {"assetId": note["id"], "aliases": ["notes/plate-7", "QXNzZXQ6"]}, token=contributor)
        before = sent.sent
        assert (await lake.get_asset("notes/plate-7"))["id"] == note["id"]
        assert sent.sent - before == 1
        assert (await lake.get_asset(note["id"]))["id"] == note["id"]
        assert sent.sent - before == 2
        # An alias that is base64 of something else than an asset's ID is an alias all the same.
        assert (await lake.get_asset("QXNzZXQ6"))["id"] == note["id"]
        assert sent.sent - before == 3
        with pytest.raises(GraphlakeClientError) as missing:
            await lake.get_asset("no/such/alias")
    assert missing.value.code == "NOT_FOUND"


async def collection_paths(api: Api, token: str, name: str) -> dict[str, str]:
    """The items of the collection named `name`: path (or asset name) -> asset ID."""
    edges = (await api.data("Collections", {"nameContains": name}, token=token))["collections"]["edges"]
    (found,) = [e["node"] for e in edges if e["node"]["name"] == name]
    items = (await api.data("Collection", {"id": found["id"], "first": 100}, token=token))["collection"]["items"]["edges"]
    return {item["node"]["path"] or item["node"]["asset"]["name"]: item["node"]["asset"]["id"] for item in items}


async def test_store_value_text_and_file_then_get_them(served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    scan = tmp_path / "scan.tif"
    scan.write_bytes(b"II*\x00" + b"\x01" * 100)
    async with client(served, contributor, tmp_path) as lake:
        reading = await lake.store_value({"od600": 0.42, "a.b": [[1, 2]]}, name="reading", collection="run-42",
                                         labels=["raw"], metadata={"plate": 7})
        note = await lake.store_text("# plate 7\nfine", name="note.md", media_type="text/markdown", collection="run-42")
        stored = await lake.store_file(scan, collection="run-42", metadata={"plate": 7}, labels=["raw"])
        await api.data("AddAliases", {"assetId": note["id"], "aliases": ["notes/plate-7"]}, token=contributor)
        got_value = await lake.get_asset(reading["id"])
        got_text = await lake.get_asset("notes/plate-7")
        got_file = await lake.get_asset(stored["id"])
        with pytest.raises(GraphlakeClientError) as missing:
            await lake.get_asset("no/such/alias")
        with pytest.raises(GraphlakeClientError, match=r"^value\.x: nan is not a JSON number"):
            await lake.store_value({"x": float("nan")})
    assert (reading["kind"], got_value["value"], got_value["labels"], got_value["metadata"]) == \
        ("VALUE", {"od600": 0.42, "a.b": [[1, 2]]}, ["raw"], {"plate": 7})
    assert got_text["kind"] == "TEXT" and got_text["text"] == "# plate 7\nfine" and got_text["mediaType"] == "text/markdown"
    assert got_text["aliases"] == ["notes/plate-7"] and got_text["downloadUrl"] is None
    assert got_file["kind"] == "FILE" and got_file["status"] == "ACTIVE" and got_file["sizeBytes"] == 104
    assert got_file["metadata"] == {"plate": 7} and got_file["downloadUrl"].startswith("http")
    # store_file answers as store_value does: what it stored, in full (an upload's answer has a few fields).
    assert (stored["metadata"], stored["labels"], stored["aliases"]) == ({"plate": 7}, ["raw"], [])
    assert stored["createdAt"] and stored["storage"]["mount"]
    assert missing.value.code == "NOT_FOUND"
    assert await collection_paths(api, contributor, "run-42") == {
        "reading": reading["id"], "note.md": note["id"], "scan.tif": stored["id"]}


async def test_store_directory_file_by_file_or_as_one_archive(served: Served, api: Api, contributor: str,
                                                              tmp_path: Path) -> None:
    root = tmp_path / "run-7"
    for relative, body in {"a/1.txt": b"one", "b/2.txt": b"two", "skip.log": b"x", ".gitignore": b"*.log\n"}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(body)
    async with client(served, contributor, tmp_path) as lake:
        files = await lake.store_directory(root, collection="run-7")
        (archive,) = await lake.store_directory(root, collection="run-7-zip", as_archive=True)
        with pytest.raises(GraphlakeClientError, match="not a directory"):
            await lake.store_directory(root / "a" / "1.txt")
    assert sorted(a["name"] for a in files) == [".gitignore", "1.txt", "2.txt"]
    assert all(a["metadata"] == {} and a["labels"] == [] and a["status"] == "ACTIVE" for a in files)  # in full
    assert set(await collection_paths(api, contributor, "run-7")) == {".gitignore", "a/1.txt", "b/2.txt"}
    assert archive["name"] == "run-7.zip" and archive["mediaType"] == "application/zip"
    assert list(await collection_paths(api, contributor, "run-7-zip")) == ["run-7.zip"]


async def test_register_external_url_and_s3_prefix(served: Served, contributor: str, s3: S3Service,
                                                   tmp_path: Path) -> None:
    prefix = f"verbs-{uuid.uuid4().hex[:8]}/"
    bucket = s3.client()
    for name, body in {"a.csv": b"x,y\n1,2\n", "b.csv": b"x,y\n3,4\n"}.items():
        await asyncio.to_thread(bucket.put_object, Bucket=s3.bucket, Key=prefix + name, Body=body)
    async with client(served, contributor, tmp_path) as lake:
        link = await lake.register_external("https://example.org/data/table.parquet", labels=["public"])
        first = await lake.register_external(bucket=s3.bucket, prefix=prefix, mount="lab", collection="external")
        again = await lake.register_external(bucket=s3.bucket, prefix=prefix, mount="lab")
        saved = await lake.save_to(first["assets"][0]["id"], tmp_path)
    (linked,) = link["assets"]
    assert linked["kind"] == "EXTERNAL" and linked["name"] == "table.parquet" and linked["labels"] == ["public"]
    assert linked["storage"]["uri"] == "https://example.org/data/table.parquet" and linked["storage"]["external"]
    assert first["count"] == 2 and sorted(a["storage"]["uri"] for a in first["assets"]) == \
        [f"s3://{s3.bucket}/{prefix}a.csv", f"s3://{s3.bucket}/{prefix}b.csv"]
    assert again["count"] == 0 and again["unchangedCount"] == 2
    assert saved.read_bytes() == {"a.csv": b"x,y\n1,2\n", "b.csv": b"x,y\n3,4\n"}[saved.name]


async def test_query_assets_with_typed_predicates_page_by_page(served: Served, contributor: str, tmp_path: Path) -> None:
    async with client(served, contributor, tmp_path) as lake:
        for i in range(5):
            await lake.store_value({"od": i / 10, "tag": f"plate-{i}"}, name=f"r{i}", metadata={"plate": i, "lab": "A"},
                                   collection="odd" if i % 2 else None)
        await lake.store_text("not a value", name="t", metadata={"plate": 3})

        async def names(*where, **filters) -> list[list[str]]:
            return [[a["name"] for a in page] async for page in lake.query_assets(*where, **filters)]

        # Every page holds one asset; five pages, in name order.
        by_page = await names(metadata("plate") >= 1, page_size=1, order_by="NAME", descending=False)
        assert by_page == [["r1"], ["r2"], ["r3"], ["r4"], ["t"]]
        assert await names(metadata("plate") >= 1, value("od") < 0.35, order_by="NAME", descending=False) == [["r1", "r2", "r3"]]
        assert await names(value("tag").is_in(["plate-0", "plate-4"]), order_by="NAME", descending=False) == [["r0", "r4"]]
        assert await names(metadata("plate") == 3, kinds=["TEXT"]) == [["t"]]
        assert await names(metadata("plate") != 3, value("tag").matches(r"^plate-[0-2]$"), order_by="NAME",
                           descending=False) == [["r0", "r1", "r2"]]
        assert await names(value("tag").contains("-4"), metadata("lab").exists()) == [["r4"]]
        assert await names(metadata("lab").exists(False), metadata("plate").not_in([0, 1, 2, 4])) == [["t"]]
        assert await names(collection="odd", order_by="NAME", descending=False) == [["r1", "r3"]]
        assert await names(name_contains="R", created_after=datetime(2000, 1, 1, tzinfo=UTC), page_size=500,
                           order_by="NAME", descending=False) == [["r0", "r1", "r2", "r3", "r4"]]
        (page,) = [p async for p in lake.query_assets(metadata("plate") == 4, payload=True)]
        assert page.assets[0]["value"] == {"od": 0.4, "tag": "plate-4"} and not page.has_next
        # A page's end_cursor resumes the listing after it, as a later run would.
        pages = lake.query_assets(metadata("plate") >= 1, page_size=2, order_by="NAME", descending=False)
        first = await anext(pages)
        await pages.aclose()
        rest = await names(metadata("plate") >= 1, page_size=2, order_by="NAME", descending=False, after=first.end_cursor)
        assert [a["name"] for a in first] == ["r1", "r2"] and first.has_next and rest == [["r3", "r4"], ["t"]]
        with pytest.raises(GraphlakeClientError) as no_collection:
            await names(collection="nobody")
        with pytest.raises(GraphlakeClientError) as empty_collection:  # it had listed every asset
            await names(collection="")
        assert empty_collection.value.code == "NOT_FOUND"
        assert await names(sha256="") == [[]]  # no digest is "", and none was every asset
        with pytest.raises(ValueError, match="time zone"):  # NaiveTime is one, as this filter's error was
            await names(created_after=datetime(2000, 1, 1))
        with pytest.raises(TypeError, match="not a predicate"):
            await names(metadata("plate") is None)
    assert no_collection.value.code == "NOT_FOUND"
    assert join_path("a.b", "c") == "a\\.b.c"


async def test_predicates_python_would_join_with_and_are_refused_not_halved(served: Served, api: Api, contributor: str,
                                                                            tmp_path: Path) -> None:
    """`0.1 < value("od") < 0.35` is Python's `(0.1 < value("od")) and (value("od") < 0.35)`: the truth of
    the first predicate was taken (always true), so the client sent only the second and listed r0 too,
    which the same two predicates sent as GraphQL do not. `and` / `or` / `not` lost a side alike."""
    async with client(served, contributor, tmp_path) as lake:
        for i in range(4):
            await lake.store_value({"od": i / 10}, name=f"r{i}")
        graphql = await api.data("Assets", {"filter": {"value": [{"path": "od", "op": "GT", "value": 0.1},
                                                                 {"path": "od", "op": "LT", "value": 0.35}]}}, token=contributor)
        assert sorted(e["node"]["name"] for e in graphql["assets"]["edges"]) == ["r2", "r3"]
        both = [a["name"] async for page in lake.query_assets(value("od") > 0.1, value("od") < 0.35) for a in page]
        assert sorted(both) == ["r2", "r3"]
        for halved in (lambda: 0.1 < value("od") < 0.35, lambda: value("od") > 0.1 and value("od") < 0.35,
                       lambda: value("od") < 0.1 or value("od") > 0.35, lambda: not value("od") == 0.2):
            with pytest.raises(TypeError, match=r"value\('od'\) .* neither true nor false .* its own argument"):
                [a async for page in lake.query_assets(halved()) for a in page]


async def test_a_time_predicate_compares_with_times_stored_as_json_time_writes_them(served: Served, contributor: str,
                                                                                   tmp_path: Path) -> None:
    """JSON has no time type: a stored time is a string, compared as text. A datetime operand is sent
    as `json_time` writes it (UTC, Python's ISO 8601), so times stored by `json_time` compare as times at
    their boundaries, whole seconds (no fraction) beside fractions included. Another form of the same
    instant is other text: "...Z" sorts after "...+00:00" and after every fraction, so it compares
    wrongly near the bound (the README says which form to store). A naive time, even as an option of
    is_in, is refused where the predicate is written."""
    t = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    berlin = t.astimezone(timezone(timedelta(hours=1)))
    assert json_time(berlin) == json_time(t) == "2026-01-01T09:30:00+00:00"
    assert json_time(t + timedelta(milliseconds=250)) == "2026-01-01T09:30:00.250000+00:00"
    assert (value("t") > berlin).as_input() == {"path": "t", "op": "GT", "value": "2026-01-01T09:30:00+00:00"}
    assert value("t").is_in([t]).as_input()["value"] == ["2026-01-01T09:30:00+00:00"]
    with pytest.raises(NaiveTime) as naive:
        value("t").is_in([t, datetime(2026, 1, 1)])
    assert (naive.value.code, naive.value.field) == ("BAD_USER_INPUT", "value('t')")
    with pytest.raises(NaiveTime):
        json_time(datetime(2026, 1, 1))
    async with client(served, contributor, tmp_path) as lake:
        for name, moment in (("before", t - timedelta(microseconds=1)), ("at", t), ("at+250ms", t + timedelta(milliseconds=250)),
                             ("at+1s", t + timedelta(seconds=1))):
            await lake.store_value({"t": json_time(moment)}, name=name)
        await lake.store_value({"z": "2026-01-01T09:30:00Z"}, name="z")  # t, as JavaScript and pydantic write it
        await lake.store_value({"z": "2026-01-01T09:30:00.100Z"}, name="z+100ms")

        async def names(*where: object) -> list[str]:
            return sorted([a["name"] async for page in lake.query_assets(*where) for a in page])  # type: ignore[arg-type]

        assert await names(value("t") > t) == ["at+1s", "at+250ms"]
        assert await names(value("t") >= t) == ["at", "at+1s", "at+250ms"]
        assert await names(value("t") < t) == ["before"]
        assert await names(value("t") <= t + timedelta(milliseconds=250)) == ["at", "at+250ms", "before"]
        assert await names(value("t") == berlin) == ["at"]
        # The same instants written another way: "...Z" is after t, and after t + 0.5 s too, as text.
        assert await names(value("z") > t) == ["z", "z+100ms"]
        assert await names(value("z") > t + timedelta(milliseconds=500)) == ["z"]


async def test_is_in_keeps_true_apart_from_1_and_false_from_0(served: Served, contributor: str, tmp_path: Path) -> None:
    """JSON's true is not 1, nor false 0, to the server's predicates, whatever Python's == says: every
    option the client is given is sent (Python's own set cannot hold 1 and True at once; a list can)."""
    options = [1, True, 0, False]
    assert value("x").is_in(options).as_input() == {"path": "x", "op": "IN", "value": [1, True, 0, False]}
    async with client(served, contributor, tmp_path) as lake:
        for name, x in (("one", 1), ("true", True), ("zero", 0), ("false", False), ("one.0", 1.0)):
            await lake.store_value({"x": x}, name=name)

        async def names(*where) -> list[str]:
            return sorted([a["name"] async for page in lake.query_assets(*where) for a in page])

        assert await names(value("x").is_in(options)) == ["false", "one", "one.0", "true", "zero"]
        assert await names(value("x").is_in([True])) == ["true"]
        assert await names(value("x").is_in([1])) == ["one", "one.0"]  # one number, however written
        assert await names(value("x").is_in([1, False])) == ["false", "one", "one.0"]
        assert await names(value("x").not_in([True, 0])) == ["false", "one", "one.0"]
        assert await names(value("x") == False) == ["false"]  # noqa: E712 (a predicate, not a test)
        assert await names(value("x").is_in((0.0,))) == ["zero"]


async def test_save_to_writes_values_texts_and_files(served: Served, contributor: str, s3: S3Service,
                                                      tmp_path: Path) -> None:
    """A file's bytes come from its signed URL, here MinIO's (the S3 mount): never through the API process."""
    gets: list[str] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            gets.append(f"{request.url.scheme}://{request.url.netloc.decode()}")
            return await super().handle_async_request(request)

    source = tmp_path / "weights.bin"
    source.write_bytes(bytes(range(256)) * 40)
    out = tmp_path / "out"
    out.mkdir()
    async with client(served, contributor, tmp_path, storage_transport=Recording(), direct_writes=False) as lake:
        reading = await lake.store_value({"od600": 0.42, "ok": True}, name="reading.json")
        note = await lake.store_text("ünïcode text", name="note.txt")
        weights = await lake.store_file(source, mount="lab")
        gets.clear()  # the uploads' PUTs
        as_json = await lake.save_to(reading, out / "r.json")
        as_text = await lake.save_to(note["id"], out)  # a directory: the asset's name
        as_file = await lake.save_to(weights["id"], out / "w.bin")
    assert json.loads(as_json.read_text()) == {"od600": 0.42, "ok": True}
    assert as_text == out / "note.txt" and as_text.read_text(encoding="utf-8") == "ünïcode text"
    assert as_file.read_bytes() == source.read_bytes()
    assert gets == [s3.endpoint]  # the one GET, to the store
    assert sorted(p.name for p in out.iterdir()) == ["note.txt", "r.json", "w.bin"]  # no temporary left


async def test_save_and_load_every_kind(served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx" * 1000)
    async with client(served, contributor, tmp_path) as lake:
        first = await lake.save("models/best", {"accuracy": 0.91, "layers": [64, 64]})
        assert await lake.load("models/best") == {"accuracy": 0.91, "layers": [64, 64]}
        second = await lake.save("models/best", "a text this time")
        assert await lake.load("models/best") == "a text this time"
        await lake.save("models/best", b"\x00raw bytes\xff")
        assert await lake.load("models/best") == b"\x00raw bytes\xff"
        latest = await lake.save("models/best", model)
        assert await lake.load("models/best") == model.read_bytes()
        copy = await lake.load("models/best", to=tmp_path / "copy.onnx")
        assert await lake.alias_target("models/best") == latest["id"]
        assert await lake.load(first["id"]) == {"accuracy": 0.91, "layers": [64, 64]}  # by ID: an earlier object
        with pytest.raises(GraphlakeClientError) as missing:
            await lake.load("models/none")
    assert missing.value.code == "NOT_FOUND"
    assert copy == tmp_path / "copy.onnx" and copy.read_bytes() == model.read_bytes()
    assert latest["name"] == "model.onnx" and latest["aliases"] == ["models/best"]
    # The alias moved on; what it named before is still stored, under no name.
    earlier = (await api.data("Asset", {"id": first["id"]}, token=contributor))["asset"]
    assert earlier["status"] == "ACTIVE" and earlier["aliases"] == [] and earlier["value"]["accuracy"] == 0.91
    assert second["kind"] == "TEXT" and second["name"] == "models/best"


class SaveFirst(httpx.AsyncHTTPTransport):
    """Holds back the first request that moves or adds an alias until `other` has run: another
    saver's whole save lands between this saver's read of the alias and its move."""

    def __init__(self, other) -> None:
        super().__init__()
        self.other, self.done = other, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.done and (b"moveAlias" in request.content or b"addAliases" in request.content):
            self.done = True
            await self.other()
        return await super().handle_async_request(request)


async def test_a_concurrent_saver_gets_a_conflict(served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    async with client(served, contributor, tmp_path) as other:
        # An alias that exists: compare-and-set on the asset it named when each save began.
        await other.save("runs/latest", {"run": 1})
        racing = SaveFirst(lambda: other.save("runs/latest", {"run": 2}))
        async with client(served, contributor, tmp_path, graphql_transport=racing) as lake:
            with pytest.raises(SaveConflict) as lost:
                await lake.save("runs/latest", {"run": 3})
        assert await other.load("runs/latest") == {"run": 2}  # the winner's object, not overwritten
        assert lost.value.code == "CONFLICT" and lost.value.current == await other.alias_target("runs/latest")
        assert "load it and save again" in str(lost.value)
        # The loser's object is deleted: nothing named it.
        losers = [a async for page in other.query_assets(statuses=["DELETED"]) for a in page]
        assert [a["name"] for a in losers] == ["runs/latest"] and losers[0]["aliases"] == []

        # A new alias: both savers saw none; the second to name it loses.
        racing = SaveFirst(lambda: other.save("runs/new", "first"))
        async with client(served, contributor, tmp_path, graphql_transport=racing) as lake:
            with pytest.raises(SaveConflict) as lost_new:
                await lake.save("runs/new", "second")
        assert await other.load("runs/new") == "first" and lost_new.value.expected is None

        # A read-modify-write that names the asset it read: a stale one is refused.
        read = await other.get_asset("runs/latest")
        await other.save("runs/latest", {"run": 4})
        with pytest.raises(SaveConflict):
            await other.save("runs/latest", {"run": 5}, replaces=read["id"])
        moved = await other.save("runs/latest", {"run": 5}, replaces=await other.alias_target("runs/latest"))
        assert await other.load("runs/latest") == {"run": 5} and moved["aliases"] == ["runs/latest"]


class BeforeFirstPut(httpx.AsyncHTTPTransport):
    """Runs `other` (another saver's whole save) just before this client's first PUT of bytes: once
    this saver's upload session is open, and in the resume state the user's processes share."""

    def __init__(self, other) -> None:
        super().__init__()
        self.other, self.done = other, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.done and request.method == "PUT":
            self.done = True
            await self.other()
        return await super().handle_async_request(request)


async def test_a_saver_that_loses_never_deletes_the_winners_file(served: Served, api: Api, contributor: str,
                                                                 tmp_path: Path) -> None:
    """Two processes saving one file under one alias: the second joined the first's open upload (the
    resume state is the user's, shared), both got its asset, the first moved the alias to it, and
    the second, losing, deleted it: the alias named nothing. A save's upload is its own now."""
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"weights" * 1000)
    async with client(served, contributor, tmp_path, direct_writes=False) as other:
        await other.save("models/best", {"v": 0})
        racing = BeforeFirstPut(lambda: other.save("models/best", checkpoint))
        async with client(served, contributor, tmp_path, direct_writes=False, storage_transport=racing) as lake:
            with pytest.raises(SaveConflict) as lost:
                await lake.save("models/best", checkpoint)
        winner = await other.alias_target("models/best")
        assert winner is not None and lost.value.current == winner
        assert await other.load("models/best") == checkpoint.read_bytes()
        assert (await api.data("Asset", {"id": winner}, token=contributor))["asset"]["status"] == "ACTIVE"
        # Both saves' assets were stored: the winner's is named, the loser's (of its own session) deleted.
        deleted = [a async for page in other.query_assets(statuses=["DELETED"]) for a in page]
        assert [a["name"] for a in deleted] == ["best.pt"] and deleted[0]["id"] != winner


async def test_what_a_user_gets_wrong_is_said_before_anything_is_stored(served: Served, api: Api, contributor: str,
                                                                         tmp_path: Path) -> None:
    """A refused alias leaves no asset behind (each retry had left one), `replaces=None` on a taken
    alias says it is taken, JSON that is not JSON names where, and `load(to=)` writes any kind."""
    async with client(served, contributor, tmp_path) as lake:
        before = (await api.data("Assets", {"first": 1}, token=contributor))["assets"]["totalCount"]
        with pytest.raises(GraphlakeClientError) as refused:
            await lake.save("bad alias", {"x": 1})
        assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == "aliases[0]"
        live = await api.data("Assets", {"first": 1}, token=contributor)
        assert live["assets"]["totalCount"] == before  # the stored object was deleted again

        await lake.save("runs/taken", {"run": 1})
        with pytest.raises(SaveConflict) as taken:
            await lake.save("runs/taken", {"run": 2}, replaces=None)
        assert "is taken" in str(taken.value) and "moved by another saver" not in str(taken.value)

        looped: list = []
        looped.append(looped)
        shared = [1, 2]
        assert (await lake.store_value({"a": shared, "b": shared}))["kind"] == "VALUE"  # twice side by side is fine
        for bad, where in (({"when": {1, 2}}, "value.when"), ({"a": [1, float("nan")]}, "value.a[1]"),
                           ({"loop": looped}, "value.loop[0]"), ({"k": {float("inf"): 1}}, "value.k")):
            with pytest.raises(GraphlakeClientError) as not_json:
                await lake.store_value(bad)
            assert not_json.value.field == "value" and str(not_json.value).startswith(where), str(not_json.value)
        with pytest.raises(GraphlakeClientError) as bad_metadata:
            await lake.store_text("t", metadata={"at": datetime.now(UTC)})
        assert bad_metadata.value.field == "metadata" and "datetime" in str(bad_metadata.value)

        written = await lake.load("runs/taken", to=tmp_path / "run.json")
        assert written == tmp_path / "run.json" and json.loads(written.read_text()) == {"run": 1}
        into_dir = await lake.save_to("runs/taken", f"{tmp_path / 'out'}/")  # text ending in a slash: a directory
        assert into_dir.parent == tmp_path / "out" and json.loads(into_dir.read_text()) == {"run": 1}
    # The URL the server prints is its endpoint: the client takes it as well as the server's root.
    async with Client(f"{served.base_url}/graphql", contributor) as by_endpoint:
        assert await by_endpoint.load("runs/taken") == {"run": 1}


async def test_update_delete_and_query_events_as_madsci_users_do(served: Served, api: Api, contributor: str,
                                                                 tmp_path: Path) -> None:
    """The verbs users of MADSci's data and event managers reach for beside storing: changing an
    asset's labels and metadata, deleting it, listing by owner and by when the data was taken, and
    querying the event log by type, level, source, time and data."""
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    async with client(served, contributor, tmp_path) as lake:
        first = await lake.store_value({"od600": 0.4}, name="a", owner={"nodeId": "reader-1"}, dataTimestamp=early)
        # The same words as store_file's (data_timestamp=), or the input's own (dataTimestamp=).
        second = await lake.store_value({"od600": 0.5}, name="b", owner={"nodeId": "reader-2"}, data_timestamp=late)
        text = await lake.store_text("od600 0.5", name="c", owner={"nodeId": "reader-2"}, data_timestamp=late)
        assert (second["dataTimestamp"], text["dataTimestamp"], text["owner"]["nodeId"]) == (
            first["dataTimestamp"].replace("2026-01-01", "2026-06-01"), second["dataTimestamp"], "reader-2")
        await lake.delete_asset(text)
        await api.data("AddAliases", {"assetId": second["id"], "aliases": ["plates/latest"]}, token=contributor)
        changed = await lake.update_asset("plates/latest", labels=["checked"], metadata={"plate": 7})
        assert changed["id"] == second["id"] and changed["labels"] == ["checked"] and changed["metadata"] == {"plate": 7}
        assert changed["name"] == "b"  # what was not given stays
        by_owner = [a["id"] async for page in lake.query_assets(owner={"nodeId": "reader-1"}) for a in page]
        taken_late = [a["id"] async for page in lake.query_assets(data_after=datetime(2026, 3, 1, tzinfo=UTC)) for a in page]
        assert by_owner == [first["id"]] and taken_late == [second["id"]]
        # One name given as a str is a list of one (it was sent as its letters: "checked" matched nothing).
        labelled = [a["id"] async for page in lake.query_assets(labels_all="checked") for a in page]
        assert labelled == [second["id"]]
        assert await lake.delete_asset(first) is True and await lake.delete_asset(first["id"]) is True  # idempotent
        with pytest.raises(GraphlakeClientError) as missing:
            await lake.delete_asset("no/such-alias")
        assert missing.value.code == "NOT_FOUND"
        # A deleted value or text is not saved to a file either (load(id) says NOT_FOUND; save_to wrote it).
        for deleted, to in ((first, tmp_path / "a.json"), (text, tmp_path / "c.txt")):
            for save in (lake.save_to(deleted["id"], to), lake.load(deleted["id"], to=to)):
                with pytest.raises(GraphlakeClientError) as gone:
                    await save
                assert gone.value.code == "NOT_FOUND" and not to.exists()
        # A file where a directory of the destination should be: named, not a bare FileExistsError.
        (tmp_path / "plate.json").write_text("{}")
        with pytest.raises(GraphlakeClientError) as under_a_file:
            await lake.save_to(second["id"], tmp_path / "plate.json" / "b.json")
        assert under_a_file.value.code == "BAD_USER_INPUT" and under_a_file.value.field == "dest"
        assert "plate.json is a file" in str(under_a_file.value)

        await lake.log_events([{"eventType": "PLATE_READ", "level": "INFO", "data": {"od600": 0.2}, "source": {"nodeId": "reader-1"}},
                               {"eventType": "PLATE_READ", "level": "ERROR", "data": {"od600": 0.9}, "source": {"nodeId": "reader-2"}},
                               {"eventType": "OTHER", "level": "ERROR", "data": {"od600": 0.9}}])
        pages = [page async for page in lake.query_events(data("od600") > 0.5, event_types=["PLATE_READ"], page_size=1)]
        assert [[e["source"]["nodeId"] for e in page] for page in pages] == [["reader-2"]]
        one_type = [e["eventType"] async for page in lake.query_events(event_types="OTHER") for e in page]
        assert one_type == ["OTHER"]
        errors = [e["eventType"] async for page in lake.query_events(min_level="ERROR", origin="CLIENT") for e in page]
        assert sorted(errors) == ["OTHER", "PLATE_READ"]
        both = [e async for page in lake.query_events(event_types=["PLATE_READ"], oldest_first=True, page_size=1) for e in page]
        assert [e["level"] for e in both] == ["INFO", "ERROR"] and both[0]["data"] == {"od600": 0.2}
        with pytest.raises(TypeError, match=r"use data\(\.\.\.\)"):
            [p async for p in lake.query_events(metadata("plate") == 7)]


async def test_files_and_external_objects_carry_an_owner_and_a_data_time(served: Served, api: Api, contributor: str,
                                                                          s3: S3Service, tmp_path: Path) -> None:
    """As MADSci's file and object-storage datapoints carry their ownership and data time, every kind
    of asset takes them, from each verb that makes one, and an owner is changed or cleared later."""
    taken = datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    who = {"userId": "ann", "workcellId": "wc-1", "managerId": "data-manager", "nodeId": "reader-1"}
    scan = tmp_path / "scan.tif"
    scan.write_bytes(b"II*\x00" + b"\x02" * 100)
    folder = tmp_path / "plates"
    folder.mkdir()
    (folder / "p1.csv").write_text("a,b\n")
    prefix = f"owned-{uuid.uuid4().hex[:8]}/"
    await asyncio.to_thread(s3.client().put_object, Bucket=s3.bucket, Key=prefix + "o.csv", Body=b"x\n")
    async with client(served, contributor, tmp_path) as lake:
        made = [await lake.store_file(scan, owner=who, data_timestamp=taken),
                *await lake.store_directory(folder, owner=who, data_timestamp=taken),
                *(await lake.register_external("https://example.org/run/plate.csv", owner=who,
                                               data_timestamp=taken))["assets"],
                *(await lake.register_external(bucket=s3.bucket, prefix=prefix, mount="lab", owner=who,
                                               data_timestamp=taken))["assets"]]
        for asset in made:
            got = await lake.get_asset(asset["id"])
            assert {k: v for k, v in got["owner"].items() if v is not None} == who, got
            assert datetime.fromisoformat(got["dataTimestamp"]) == taken, got
        by_workcell = [a["id"] async for page in lake.query_assets(owner={"workcellId": "wc-1"}) for a in page]
        assert sorted(by_workcell) == sorted(a["id"] for a in made)
        moved = await lake.update_asset(made[0], owner={"userId": "bo"})  # every field replaced
        assert {k: v for k, v in moved["owner"].items() if v is not None} == {"userId": "bo"}
    cleared = await api.data("UpdateAsset", {"input": {"id": made[0]["id"], "owner": None}}, token=contributor)
    assert cleared["updateAsset"]["id"] == made[0]["id"]
    async with client(served, contributor, tmp_path) as lake:
        assert not any((await lake.get_asset(made[0]["id"]))["owner"].values())


async def test_every_verb_names_what_json_cannot_send_and_takes_aware_times(served: Served, api: Api, contributor: str,
                                                                            tmp_path: Path) -> None:
    """Where a verb does not check its arguments itself, the request's encoding does, naming the
    argument and the place: httpx raised a bare "Object of type set is not JSON serializable".
    A DateTime argument takes an aware datetime; a naive one is refused, as the server could not
    know its zone."""
    when = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    async with client(served, contributor, tmp_path) as lake:
        stamped = await lake.store_value({"t": 1}, name="stamped", dataTimestamp=when, metadata={"at": when.isoformat()})
        assert stamped["dataTimestamp"].startswith("2026-11-23T09:00:00")
        pages = [page async for page in lake.query_assets(metadata("at") >= when)]  # compared as ISO 8601 text
        assert [a["id"] for page in pages for a in page] == [stamped["id"]]
        cases = [
            (lake.register_external("https://data.example/a.csv", metadata={"s": {1}}), "metadata", "metadata.s: a set"),
            (lake.log_event("X", data={"t": when}), "inputs[0].data", "inputs[0].data.t: a datetime is not JSON"),
            (lake.store_value(1, dataTimestamp=datetime(2026, 1, 1)), "dataTimestamp", "dataTimestamp: "),
            (lake.log_event("X", data={"x": float("nan")}), "inputs[0].data", "inputs[0].data.x: nan is not a JSON number"),
        ]
        for call, field, message in cases:
            with pytest.raises(GraphlakeClientError) as refused:
                await call
            assert refused.value.code == "BAD_USER_INPUT" and refused.value.field == field, refused.value
            assert str(refused.value).startswith(message), str(refused.value)
        with pytest.raises(GraphlakeClientError) as blank:  # an empty name is the user's mistake, not "value"
            await lake.store_value(1, name="")
        assert blank.value.code == "BAD_USER_INPUT" and blank.value.field == "name"
        # A collection name the server refuses fails the store before anything is stored, naming `collection`.
        before = (await api.data("Assets", {"first": 1}, token=contributor))["assets"]["totalCount"]
        with pytest.raises(GraphlakeClientError) as long_name:
            await lake.store_value(1, collection="c" * 600)
        assert long_name.value.field == "collection" and long_name.value.code == "BAD_USER_INPUT", long_name.value
        assert (await api.data("Assets", {"first": 1}, token=contributor))["assets"]["totalCount"] == before
        # A file in directories not made yet: they are made (the temporary file beside it had failed).
        saved = await lake.save_to(stamped, tmp_path / "results" / "run-1" / "stamped.json")
        assert json.loads(saved.read_text()) == {"t": 1}


async def test_create_dataset_version(served: Served, api: Api, contributor: str, tmp_path: Path) -> None:
    datums = await factories.datums(api, contributor, 3, roles=("image",))
    async with client(served, contributor, tmp_path) as lake:
        v1 = await lake.create_dataset_version("widgets", "v1", add_datums=[d["id"] for d in datums],
                                               description="first cut")
        v2 = await lake.create_dataset_version("widgets", "v2", parent="v1", remove_datums=[datums[0]["id"]])
        await lake.store_value({"x": 1}, name="item", collection="picked")
        v3 = await lake.create_dataset_version("widgets", "v3", from_collection="picked")
        with pytest.raises(GraphlakeClientError) as no_parent:
            await lake.create_dataset_version("widgets", "v4", parent="v9")
        with pytest.raises(GraphlakeClientError) as misspelt:  # checked before the dataset is made
            await lake.create_dataset_version("widgetz", "v2", parent="v1")
        assert misspelt.value.field == "parent"
        assert (await lake.execute(ops.DATASET, {"name": "widgetz"}))["dataset"] is None
        with pytest.raises(GraphlakeClientError) as taken:
            await lake.create_dataset_version("widgets", "v1")
    assert (v1["datumCount"], v1["description"], v1["parent"], v1["dataset"]["name"]) == (3, "first cut", None, "widgets")
    assert v2["datumCount"] == 2 and v2["parent"]["version"] == "v1" and v2["dataset"]["id"] == v1["dataset"]["id"]
    assert v3["datumCount"] == 1 and v1["manifestSha256"] != v2["manifestSha256"]
    assert no_parent.value.code == "NOT_FOUND" and taken.value.code == "CONFLICT"


async def logged(api: Api, token: str, event_type: str = "PYTHON_LOG") -> dict[str, dict]:
    """The events a handler stored, by message."""
    edges = (await api.data("Events", {"filter": {"eventTypes": [event_type]}, "first": 10}, token=token))["events"]["edges"]
    return {e["node"]["message"]: e["node"] for e in edges}


def logger_with(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"tests.verbs.{uuid.uuid4().hex[:8]}")
    logger.propagate, logger.level = False, logging.DEBUG
    logger.addHandler(handler)
    return logger


async def test_the_log_handler_ships_records_as_events(served: Served, api: Api, contributor: str) -> None:
    handler = GraphlakeLogHandler(served.base_url, contributor, source={"nodeId": "reader-1"}, flush_interval=0.05)
    logger = logger_with(handler)
    try:
        taken = datetime(2026, 1, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))
        logger.info("plate %s read", 7, extra={"plate": 7, "odd": object(), "nan": float("nan"), "nested": {1: (2, 3)},
                                               "taken": taken})
        logger.log(25, "a custom level rounds down")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("division failed")
        await asyncio.to_thread(handler.flush, 10)  # off the loop: the server answers on it
    finally:
        await asyncio.to_thread(handler.close)
    events = (await api.data("Events", {"filter": {"eventTypes": ["PYTHON_LOG"]}, "first": 10}, token=contributor))
    by_message = {e["node"]["message"]: e["node"] for e in events["events"]["edges"]}
    assert set(by_message) == {"plate 7 read", "a custom level rounds down", "division failed"}
    read = by_message["plate 7 read"]
    assert read["level"] == "INFO" and read["source"]["nodeId"] == "reader-1"
    assert read["data"]["plate"] == 7 and read["data"]["nan"] == "nan" and read["data"]["odd"].startswith("<object")
    assert read["data"]["nested"] == {"1": [2, 3]}
    assert read["data"]["taken"] == "2026-01-01T09:30:00+00:00"  # as a predicate compares a time: was its repr
    filtered = {"eventTypes": ["PYTHON_LOG"], "data": [(data("taken") >= taken).as_input()]}
    assert [e["node"]["message"] for e in (await api.data("Events", {"filter": filtered}, token=contributor))["events"]["edges"]] \
        == ["plate 7 read"]
    assert read["data"]["log"]["logger"] == logger.name and read["data"]["log"]["function"].startswith("test_the_log")
    custom = by_message["a custom level rounds down"]
    assert custom["level"] == "INFO" and (custom["data"]["log"]["levelno"], custom["data"]["log"]["levelname"]) == (25, "Level 25")
    failed = by_message["division failed"]
    assert failed["level"] == "ERROR" and "ZeroDivisionError" in failed["data"]["log"]["exception"]
    assert handler.dropped == 0 and handler.lost == 0


async def test_the_log_handler_never_blocks_the_caller(capfd: pytest.CaptureFixture[str]) -> None:
    """A server that takes connections and never answers: the sender is stuck on its first batch,
    the queue fills, and logging goes on returning at once, dropping and counting what does not fit."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(50)  # the kernel completes the handshakes; nobody ever reads
    url = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
    handler = GraphlakeLogHandler(url, "glk_none", capacity=20, batch_size=1, flush_interval=0.01, timeout=5,
                                  close_timeout=0.2)
    logger = logger_with(handler)
    try:
        logger.warning("the first, which the sender takes and sends")
        await wait_for(lambda: handler._queue.qsize() == 0, what="the sender to take the first record")

        def log_many() -> None:
            for i in range(25):
                logger.warning("record %d", i)

        # A deadline, not a timing: logging that blocked on the network would never come back here.
        await asyncio.wait_for(asyncio.to_thread(log_many), 5)
        assert handler.dropped == 5
        await asyncio.to_thread(handler.close)
        await wait_for(lambda: not handler._thread.is_alive(), timeout=20, what="the sender to give up")
    finally:
        blackhole.close()
    assert handler.lost == 21 and handler.dropped == 5  # the stuck batch and the 20 queued; 5 never queued
    err = capfd.readouterr().err
    # The stuck batch's attempt (and so its retries) is cancelled as close gives up on it.
    assert "dropping log records" in err and "21 log records not sent before the handler closed" in err


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def overflow(handler: GraphlakeLogHandler, logger: logging.Logger, release: asyncio.Event) -> None:
    """One record taken by the sender, held at the proxy until `release`; thirteen more logged into a
    queue of ten (three dropped); then released and flushed."""
    logger.warning("held")
    if handler.batch_size > 1:  # sent alone, now: a batch still gathering would take some of the thirteen
        handler.flush(0)
    await wait_for(lambda: handler._queue.qsize() == 0, what="the sender to take the first record")
    for i in range(13):
        logger.info("queued %d", i)
    assert handler.dropped == 3
    release.set()
    await asyncio.to_thread(handler.flush, 20)


async def held_proxy(port: int, release: asyncio.Event) -> tuple[asyncio.Server, str]:
    """A proxy to the server on `port` that holds every connection until `release`; and its URL."""

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    proxy = await asyncio.start_server(held, "127.0.0.1", 0)
    return proxy, f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"


async def shipped_overflow(api: Api, contributor: str, handler: GraphlakeLogHandler) -> None:
    """What overflow() logged is in the lake: every queued record once, and one WARNING counting the rest."""
    edges = (await api.data("Events", {"filter": {"eventTypes": ["PYTHON_LOG"]}, "first": 50},
                            token=contributor))["events"]["edges"]
    messages = sorted(e["node"]["message"] for e in edges)
    assert messages == sorted(["held", "3 log records dropped: the handler's queue was full",
                               *(f"queued {i}" for i in range(10))])
    (notice,) = [e["node"] for e in edges if "dropped" in e["node"]["message"]]
    assert notice["level"] == "WARNING" and notice["data"] == {"log": {"dropped": 3}}
    assert handler.lost == 0


async def test_the_log_handler_tells_the_lake_what_it_dropped(served: Served, api: Api, contributor: str) -> None:
    """A proxy holds the sender's connection to the real server until released: the queue fills
    meanwhile, and once through, the lake holds every queued record and a WARNING counting the rest
    (at batch_size 1, the notice goes in a batch of its own)."""
    handler = await overflow_through(int(served.base_url.rsplit(":", 1)[1]), contributor, batch_size=1)
    await shipped_overflow(api, contributor, handler)


async def test_a_drop_notice_takes_a_place_in_its_batch(served: Served, settings: Settings, api: Api,
                                                        contributor: str) -> None:
    """A server taking at most 5 events a call, and a handler whose batch_size is that limit: the
    notice rode on top of a full batch, 6 events, which the server refused whole (the records counted
    lost, the notice never stored), and so every batch after it that carried the notice again."""
    limited = create_app(settings.model_copy(update={"max_events_per_batch": 5}))
    async with serving(limited, log_level="info") as port:  # "warning" would silence uvicorn.access for later tests
        handler = await overflow_through(port, contributor, batch_size=5)
    await shipped_overflow(api, contributor, handler)


async def overflow_through(port: int, contributor: str, *, batch_size: int) -> GraphlakeLogHandler:
    """A handler sending to the server on `port` through a proxy held while its queue overflows
    (overflow), then closed: what it shipped is shipped_overflow's to check."""
    release = asyncio.Event()
    proxy, url = await held_proxy(port, release)
    handler = GraphlakeLogHandler(url, contributor, capacity=10, batch_size=batch_size, flush_interval=0.01)
    try:
        await overflow(handler, logger_with(handler), release)
    finally:
        await asyncio.to_thread(handler.close)
        proxy.close()
    return handler


async def test_a_drop_notice_whose_answers_were_lost_is_sent_again_under_its_key(served: Served, api: Api,
                                                                                 contributor: str) -> None:
    """The queue overflows while the sender is held; then every answer to the batch carrying the drop
    notice is lost (the server stores it each time), its retries run out, and the next batch carries
    the same notice under the same key: the lake counts the drops once, not once per notice made."""
    port = int(served.base_url.rsplit(":", 1)[1])
    release = asyncio.Event()
    answers_lost = 0

    async def proxy_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answers_lost
        await release.wait()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        notices: list[bool] = []

        async def requests() -> None:
            while data := await reader.read(65536):
                notices.append(b"records dropped" in data)
                up_writer.write(data)
                await up_writer.drain()

        async def answering() -> None:
            nonlocal answers_lost
            while data := await up_reader.read(65536):
                if notices and notices[-1] and answers_lost < 2:  # stored, and the answer lost on the way
                    answers_lost += 1
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(requests(), answering(), return_exceptions=True)
        up_writer.close()

    proxy = await asyncio.start_server(proxy_one, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    handler = GraphlakeLogHandler(url, contributor, capacity=10, batch_size=1, flush_interval=0.01, retries=1,
                                  backoff_seconds=0.01)
    logger = logger_with(handler)
    try:
        await overflow(handler, logger, release)
        logger.info("after")
        await asyncio.to_thread(handler.flush, 20)
    finally:
        await asyncio.to_thread(handler.close)
        proxy.close()
    assert answers_lost == 2  # both attempts of the batch carrying the notice
    edges = (await api.data("Events", {"filter": {"eventTypes": ["PYTHON_LOG"]}, "first": 50},
                            token=contributor))["events"]["edges"]
    notices = [e["node"] for e in edges if "dropped" in e["node"]["message"]]
    assert [n["data"] for n in notices] == [{"log": {"dropped": 3}}]  # once, though sent three times
    # Every queued record is stored and confirmed: at batch_size 1 the notice went alone, the batches
    # whose answers were lost held no record.
    assert sorted(e["node"]["message"] for e in edges if "dropped" not in e["node"]["message"]) == sorted(
        ["held", "after", *(f"queued {i}" for i in range(10))])
    assert handler.lost == 0


async def test_the_log_handler_sends_records_of_a_clock_ahead_timed_by_the_lake(
        served: Served, api: Api, contributor: str, capfd: pytest.CaptureFixture[str]) -> None:
    """A machine whose clock runs ahead of the lake's past the skew it allows: every batch used to be
    refused for its records' time, and every record lost. Now the batch goes again untimed, as do the
    records after it: the lake times them, their own time kept in their data."""
    handler = GraphlakeLogHandler(served.base_url, contributor, flush_interval=0.05, batch_size=1)
    logger = logger_with(handler)
    ahead = datetime.now(UTC) + timedelta(hours=2)
    try:
        for message in ("from a clock ahead", "queued behind it"):  # a batch each, both timed when queued
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, (), None)
            record.created = ahead.timestamp()
            logger.handle(record)
        await asyncio.to_thread(handler.flush, 10)
        logger.info("after it")
        await asyncio.to_thread(handler.flush, 10)
    finally:
        await asyncio.to_thread(handler.close)
    stored = await logged(api, contributor)
    assert set(stored) == {"from a clock ahead", "queued behind it", "after it"} and handler.lost == 0
    early = stored["from a clock ahead"]
    assert datetime.fromisoformat(early["data"]["log"]["created"]) == ahead.replace(
        microsecond=ahead.microsecond // 1000 * 1000)  # its own time, to the millisecond it was sent with
    assert datetime.fromisoformat(early["timestamp"]) < ahead - timedelta(hours=1)  # the lake's
    assert "created" in stored["after it"]["data"]["log"]  # untimed from then on
    assert "clock is ahead of the lake's" in capfd.readouterr().err


@pytest.mark.parametrize("how", ["lost", "gateway"])
async def test_the_log_handler_sends_a_batch_again_and_the_lake_holds_each_record_once(
        served: Served, api: Api, contributor: str, how: str) -> None:
    """A proxy passes the first batch to the server, which stores it, and then drops its answer (the
    connection closed, or a gateway's 504): the sender cannot know it was stored and sends it again,
    under the same keys, and the lake finds it rather than storing it twice."""
    port = int(served.base_url.rsplit(":", 1)[1])
    batches: list[bytes] = []  # the logEvents requests that went through

    async def proxy_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)

        async def requests() -> None:
            while data := await reader.read(65536):
                if b"logEvents" in data:
                    batches.append(data)
                up_writer.write(data)
                await up_writer.drain()

        async def answers() -> None:
            while data := await up_reader.read(65536):
                if len(batches) == 1 and not dropped:  # the first batch's answer: the server stored it
                    dropped.append(data)
                    if how == "gateway":
                        writer.write(b"HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        await writer.drain()
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(requests(), answers(), return_exceptions=True)
        up_writer.close()

    dropped: list[bytes] = []
    proxy = await asyncio.start_server(proxy_one, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    handler = GraphlakeLogHandler(url, contributor, flush_interval=0.05, backoff_seconds=0.05)
    logger = logger_with(handler)
    try:
        for i in range(5):
            logger.info("reading %d", i)
        await asyncio.to_thread(handler.flush, 20)  # off the loop: the proxy and the server answer on it
        logger.info("after")
        await asyncio.to_thread(handler.flush, 20)
    finally:
        await asyncio.to_thread(handler.close)
        proxy.close()
    assert dropped and b'"data":{"logEvents"' in dropped[0], dropped  # the first attempt was stored
    assert len(batches) >= 3, len(batches)  # the first batch twice, then "after"
    edges = (await api.data("Events", {"filter": {"eventTypes": ["PYTHON_LOG"]}, "first": 50},
                            token=contributor))["events"]["edges"]
    messages = sorted(e["node"]["message"] for e in edges)
    assert messages == ["after", *(f"reading {i}" for i in range(5))]
    assert len({e["node"]["key"] for e in edges}) == 6
    assert handler.lost == 0 and handler.dropped == 0


AT_EXIT_SCRIPT = r"""
import logging, sys
from graphlake_client import GraphlakeLogHandler

url, token = sys.argv[1:3]
logging.basicConfig(level=logging.INFO)  # so httpx logs the sender's own requests, through the root logger
# 20 s to send them at exit, not the default 5: on a busy machine four batches of 500 into the test's
# server (on the test's own loop) took longer, and the test failed at random. The hang it catches
# waited close_timeout three times over: past the test's 60 s all the same.
logging.getLogger().addHandler(GraphlakeLogHandler(url, token, close_timeout=20))
for i in range(2000):
    logging.getLogger("burst").warning("record %d", i)
# The script ends here: logging.shutdown flushes and closes the handler.
"""


async def test_the_log_handler_sends_what_was_logged_when_the_script_ends(served: Served, api: Api,
                                                                          contributor: str) -> None:
    """With INFO on the root logger (logging.basicConfig), the sender's own httpx records waited for
    the lock logging.shutdown held while it closed the handler: exit hung its close_timeout three
    times over, and all but the first batch were lost."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AT_EXIT_SCRIPT, served.base_url, contributor,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    _, err = await asyncio.wait_for(process.communicate(), 60)  # the server runs on this loop: never block it
    assert process.returncode == 0, err.decode()
    assert b"not sent before the handler closed" not in err, err.decode()
    stored = await api.data("Events", {"filter": {"eventTypes": ["PYTHON_LOG"]}, "first": 1}, token=contributor)
    assert stored["events"]["totalCount"] == 2000


STUCK_AT_EXIT_SCRIPT = r"""
import logging, socket, sys, time
from graphlake_client import GraphlakeLogHandler

blackhole = socket.socket()
blackhole.bind(("127.0.0.1", 0))
blackhole.listen(50)  # takes connections, never answers
handler = GraphlakeLogHandler(f"http://127.0.0.1:{blackhole.getsockname()[1]}", "glk_none", timeout=60, close_timeout=2)
logging.getLogger().addHandler(handler)
for i in range(3000):
    logging.getLogger("burst").warning("record %d", i)
while handler._queue.qsize() > 2500:  # the sender has taken its first batch of 500, and is stuck on it
    time.sleep(0.01)
# The handler's waits, each with the time it may take (None: no bound); a put that does not block takes none.
waits = []
progress_wait, put, join = handler._progress.wait_for, handler._queue.put, handler._thread.join

def bounded_wait(predicate, timeout=None):
    waits.append(timeout)
    return progress_wait(predicate, timeout)

def bounded_put(item, block=True, timeout=None):
    waits.append(timeout if block else 0.0)
    return put(item, block, timeout)

def bounded_join(timeout=None):
    waits.append(timeout)
    return join(timeout)

handler._progress.wait_for, handler._queue.put, handler._thread.join = bounded_wait, bounded_put, bounded_join
logging.shutdown()  # what the end of a script runs: a flush, then close
print(f"{sum(w for w in waits if w is not None)} {sum(w is None for w in waits)} {handler.lost}")
"""


def test_the_log_handler_at_exit_waits_its_close_timeout_once_and_counts_every_record_lost() -> None:
    """A server that never answers: logging.shutdown's flush ran out its close_timeout, then close
    waited it out twice more (6 s for 2), and the batch in flight was never counted lost. What the
    handler's waits were given, not how long they took (a time that also counts a loaded machine)."""
    done = subprocess.run([sys.executable, "-c", STUCK_AT_EXIT_SCRIPT], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    allowed, unbounded, lost = done.stdout.split()
    assert int(unbounded) == 0 and float(allowed) <= 2, done.stdout  # one close_timeout (2 s) in all, not three
    assert int(lost) == 3000, done.stdout
    assert "3000 log records not sent before the handler closed" in done.stderr, done.stderr


SYNC_SCRIPT = r"""
import asyncio, json, sys
from graphlake_client import SyncClient, metadata

url, token, out = sys.argv[1:4]
with SyncClient(url, token) as lake:  # a plain script: no event loop of its own
    lake.save("sync/plain", {"from": "script"})
    plain = lake.load("sync/plain")

async def notebook_cell():
    # Inside a running loop, as in Jupyter: asyncio.run would refuse; the SyncClient's own loop does not care.
    with SyncClient(url, token) as lake:
        asset = lake.store_value({"n": 1}, name="in-loop", metadata={"cell": 1})
        pages = [[a["name"] for a in page] for page in lake.query_assets(metadata("cell") == 1, page_size=1)]
        lake.save_to(asset, out)
        return pages

pages = asyncio.run(notebook_cell())
print(json.dumps({"plain": plain, "pages": pages}))
"""


async def test_the_sync_client_from_a_script_and_from_a_running_loop(served: Served, contributor: str,
                                                                     tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SYNC_SCRIPT, served.base_url, contributor, str(tmp_path / "in-loop.json"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
        cwd=Path(__file__).resolve().parents[1])
    out, err = await asyncio.wait_for(process.communicate(), 60)  # the server runs on this loop: never block it
    assert process.returncode == 0, err.decode()
    assert json.loads(out) == {"plain": {"from": "script"}, "pages": [["in-loop"]]}
    assert json.loads((tmp_path / "in-loop.json").read_text()) == {"n": 1}


async def test_the_sync_client_pages_uploads_and_conflicts(served: Served, contributor: str, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")

    def script() -> dict[str, object]:
        with SyncClient(served.base_url, contributor, resume=ResumeState(tmp_path / "resume.json")) as lake:
            for i in range(3):
                lake.store_value(i, name=f"n{i}", labels=["sync"])
            pages = [len(page) for page in lake.query_assets(labels_all=["sync"], page_size=2)]
            stored = lake.store_file(source, collection="sync")
            first = lake.save("sync/cas", "one")
            lake.save("sync/cas", "two")
            try:
                lake.save("sync/cas", "three", replaces=first["id"])
                conflict = None
            except SaveConflict as error:
                conflict = error.code
            kept = lake.query_assets(labels_all=["sync"], page_size=2)  # an iterator kept past close()
            next(kept)
            result = {"pages": pages, "file": lake.read_bytes(stored), "conflict": conflict, "loaded": lake.load("sync/cas")}
        try:  # a call after close is told so, plainly
            lake.load("sync/cas")
            result["after_close"] = None
        except RuntimeError as error:
            result["after_close"] = str(error)
        kept.close()  # its cleanup has no loop left to run on: nothing raised, nothing printed
        return result

    result = await asyncio.to_thread(script)  # off the loop the server runs on
    assert result == {"pages": [2, 1], "file": b"a,b\n1,2\n", "conflict": "CONFLICT", "loaded": "two",
                      "after_close": "this SyncClient is closed: make a new one (or use it as a context manager around its calls)"}


async def test_one_client_serves_several_asyncio_runs(served: Served, contributor: str, tmp_path: Path) -> None:
    """A script or notebook makes one Client and calls asyncio.run for each step: every run has a new
    loop, and the connections the first one opened died with it. Each run gets its own; closing the
    client in one run (async with) closes that run's, and a later run opens new ones. Off the loop
    the server runs on, as a script's main thread would be."""
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(3000))

    def script() -> dict[str, object]:
        lake = client(served, contributor, tmp_path)
        stored = asyncio.run(lake.store_value({"run": 1}, name="first-run"))
        uploaded = asyncio.run(lake.store_file(scan))  # the shared mount, asked for in a run of its own
        got = asyncio.run(lake.get_asset(stored["id"]))

        async def closing() -> bytes:
            async with lake:
                return await lake.read_bytes(uploaded)

        first, second = asyncio.run(closing()), asyncio.run(closing())  # closed at the end of a run, used again
        asyncio.run(lake.aclose())
        return {"value": got["value"], "first": first, "second": second}

    assert await asyncio.to_thread(script) == {"value": {"run": 1}, "first": scan.read_bytes(), "second": scan.read_bytes()}


async def test_a_transport_handed_to_the_client_serves_several_asyncio_runs(served: Served, contributor: str,
                                                                            tmp_path: Path) -> None:
    """A transport holds connections of the loop that ran it, as the client's own pools do: one handed
    in as an instance was used again on the next run's loop and failed with "Event loop is closed".
    Handed in as a factory, each run's loop gets its own; an instance is refused on a second loop,
    naming its argument, before anything is sent."""
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(3000))

    def script() -> dict[str, object]:
        made: dict[str, list[Counting]] = {"graphql": [], "storage": []}

        def factory(kind: str) -> Callable[[], Counting]:
            def make() -> Counting:
                made[kind].append(Counting())
                return made[kind][-1]
            return make

        lake = client(served, contributor, tmp_path, direct_writes=False, graphql_transport=factory("graphql"),
                      storage_transport=factory("storage"))
        first = asyncio.run(lake.store_file(scan, name="first.bin"))  # PUT to its signed URL; not closed
        second = asyncio.run(lake.store_file(scan, name="second.bin"))
        copy = asyncio.run(lake.read_bytes(second))
        asyncio.run(lake.aclose())
        shared = Counting()
        other = client(served, contributor, tmp_path, graphql_transport=shared)
        got = asyncio.run(other.get_asset(first["id"]))
        sent = shared.sent
        try:
            asyncio.run(other.get_asset(first["id"]))
            refused = ""
        except RuntimeError as error:
            refused = str(error)
        return {"names": [got["name"], second["name"]], "copy": copy, "refused": refused, "after": shared.sent - sent,
                "graphql": [t.sent > 0 for t in made["graphql"]], "storage": [t.sent for t in made["storage"]]}

    result = await asyncio.to_thread(script)  # off the loop the server runs on, as a script's main thread
    assert result["names"] == ["first.bin", "second.bin"] and result["copy"] == scan.read_bytes()
    # One of each per run, each used there: a PUT in each upload's run.
    assert result["graphql"] == [True, True, True] and len(result["storage"]) == 3 and result["storage"][:2] == [1, 1]
    refused = str(result["refused"])
    assert refused.startswith("graphql_transport: ") and "graphql_transport=lambda: Counting(...)" in refused, refused
    assert result["after"] == 0


UNCLOSED_SCRIPT = r"""
import asyncio, sys
from graphlake_client import Client, SyncClient

url, token = sys.argv[1:3]
lake = Client(url, token)  # one client, two runs, never closed
stored = asyncio.run(lake.store_value({"run": 1}, name="first"))
print(asyncio.run(lake.get_asset(stored["id"]))["value"]["run"])

async def main():
    inner = Client(url, token)  # made and used in one run, never closed
    return (await inner.store_value({"run": 2}, name="second"))["name"]

print(asyncio.run(main()))

def step():
    return SyncClient(url, token).store_value({"run": 3}, name="third")["name"]  # dropped at once, never closed

print(step())
kept = SyncClient(url, token)  # alive at exit, never closed
print(kept.get_asset(stored["id"])["value"]["run"])
"""


async def test_clients_never_closed_leave_nothing_open_at_exit(served: Served, contributor: str) -> None:
    """A script that never closes its clients: async ones across asyncio.runs and within one, a
    SyncClient dropped and one alive at exit. Each run's connections were left to the closed loop,
    and the SyncClient's to a loop nobody stopped: under python -X dev, every socket was a
    ResourceWarning ("unclosed transport") as the interpreter ended."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", UNCLOSED_SCRIPT, served.base_url, contributor,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    out, err = await asyncio.wait_for(process.communicate(), 60)  # the server runs on this loop: never block it
    assert process.returncode == 0, err.decode()
    assert out.decode().split() == ["1", "second", "third", "1"]
    for sign in ("ResourceWarning", "unclosed", "Exception ignored", "was destroyed but it is pending"):
        assert sign.lower() not in err.decode().lower(), err.decode()


async def test_a_naive_datetime_is_one_error_naming_its_argument_in_every_verb(served: Served, api: Api, contributor: str,
                                                                              tmp_path: Path) -> None:
    """Wherever a verb takes a time, a naive datetime is NaiveTime (BAD_USER_INPUT, and a ValueError)
    naming the argument as the caller wrote it, before anything is stored: these verbs raised a bare
    ValueError, or BAD_USER_INPUT naming a GraphQL variable (`input`), after making a collection.
    Refused, not taken as UTC: `datetime.now()` is local time. An aware time in any zone is sent as UTC."""
    naive = datetime(2026, 1, 1, 9, 30)
    scan = tmp_path / "scan.bin"
    scan.write_bytes(b"\x01" * 100)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.txt").write_text("a")

    async def events() -> list[object]:
        return [p async for p in lake.query_events(after=naive)]

    async def before_events() -> list[object]:
        return [p async for p in lake.query_events(before=naive)]

    async def assets(**bound: datetime) -> list[object]:
        return [p async for p in lake.query_assets(**bound)]

    async def stored() -> tuple[int, int]:
        counts = await api.data("Assets", {"first": 1}, token=contributor)
        named = (await api.data("Collections", {"nameContains": "naive-"}, token=contributor))["collections"]["edges"]
        return counts["assets"]["totalCount"], len(named)

    async with client(served, contributor, tmp_path) as lake:
        existing = await lake.store_value(1, name="existing")
        before = await stored()
        cases = [
            (lake.store_value(1, collection="naive-1", dataTimestamp=naive), "dataTimestamp"),
            (lake.store_text("t", collection="naive-2", dataTimestamp=naive), "dataTimestamp"),
            (lake.store_value(1, collection="naive-1", data_timestamp=naive), "data_timestamp"),
            (lake.store_text("t", collection="naive-2", data_timestamp=naive), "data_timestamp"),
            (lake.store_file(scan, collection="naive-3", data_timestamp=naive), "data_timestamp"),
            (lake.upload_file(scan, data_timestamp=naive), "data_timestamp"),
            (lake.store_directory(tmp_path / "dir", collection="naive-4", data_timestamp=naive), "data_timestamp"),
            (lake.upload_paths([tmp_path / "dir"], collection="naive-5", as_archive=True, data_timestamp=naive),
             "data_timestamp"),
            (lake.register_external("https://data.example/a.csv", collection="naive-6", data_timestamp=naive),
             "data_timestamp"),
            (lake.update_asset(existing, data_timestamp=naive), "data_timestamp"),
            (assets(created_after=naive), "created_after"), (assets(created_before=naive), "created_before"),
            (assets(data_after=naive), "data_after"), (assets(data_before=naive), "data_before"),
            (events(), "after"), (before_events(), "before"),
            (lake.log_event("X", timestamp=naive), "inputs[0].timestamp"),
            (lake.log_events([{"eventType": "X"}, {"eventType": "Y", "timestamp": naive}]), "inputs[1].timestamp"),
        ]
        for call, field in cases:
            with pytest.raises(NaiveTime) as refused:
                await call
            assert (refused.value.code, refused.value.field) == ("BAD_USER_INPUT", field), (field, refused.value)
            assert str(refused.value).startswith(f"{field}: datetime.datetime(2026, 1, 1, 9, 30) has no time zone: ")
            assert isinstance(refused.value, ValueError)
        with pytest.raises(NaiveTime) as in_predicate:  # where the comparison is written
            _ = metadata("taken") >= naive
        assert in_predicate.value.field == "metadata('taken')"
        assert await stored() == before  # no asset, no collection
        assert (await lake.get_asset(existing["id"]))["dataTimestamp"] is None
        # An aware time in another zone is the same instant, sent as UTC.
        berlin = datetime(2026, 1, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))
        await lake.update_asset(existing, data_timestamp=berlin)
        assert datetime.fromisoformat((await lake.get_asset(existing["id"]))["dataTimestamp"]) == naive.replace(tzinfo=UTC)
        found = [a["id"] async for page in lake.query_assets(data_after=berlin - timedelta(seconds=1),
                                                             data_before=berlin + timedelta(seconds=1)) for a in page]
        assert found == [existing["id"]]

    def sync() -> tuple[str | None, str | None]:
        with SyncClient(served.base_url, contributor) as lake:
            try:
                lake.store_value(1, dataTimestamp=naive)
            except NaiveTime as error:
                return error.code, error.field
        return None, None

    assert await asyncio.to_thread(sync) == ("BAD_USER_INPUT", "dataTimestamp")


async def test_a_record_that_utf8_cannot_carry_is_stored_escaped_with_its_batch(served: Served, api: Api,
                                                                                contributor: str) -> None:
    """A file name of another encoding read through os.fsdecode holds a lone surrogate, which JSON
    in UTF-8 cannot carry: the record goes with it escaped, and its batch is not refused."""
    handler = GraphlakeLogHandler(served.base_url, contributor, flush_interval=0.05)
    logger = logger_with(handler)
    try:
        name = os.fsdecode(b"caf\xe9.txt")
        logger.warning("read %s", name, extra={"file": name, name: 1})
        logger.info("next")
        await asyncio.to_thread(handler.flush, 20)
    finally:
        await asyncio.to_thread(handler.close)
    by_message = await logged(api, contributor)
    assert set(by_message) == {"read caf\\udce9.txt", "next"} and handler.lost == 0
    assert by_message["read caf\\udce9.txt"]["data"]["file"] == "caf\\udce9.txt"


async def test_a_record_too_large_goes_shortened_and_its_batch_with_it(served: Served, api: Api, contributor: str,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """A record whose data passes the server's 1 MiB made the server refuse its whole batch, every
    record in it lost. Now: shortened by the handler (its traceback's end kept, its largest `extra`
    fields named and left out), or, past what the handler knows, refused alone and the rest sent."""
    handler = GraphlakeLogHandler(served.base_url, contributor, flush_interval=5)
    logger = logger_with(handler)
    try:
        logger.info("before")
        try:
            raise ValueError("deep " + "x" * 2_000_000)
        except ValueError:
            logger.exception("huge", extra={"blob": "b" * 3_000_000, "small": 1})
        logger.info("after")
        await asyncio.to_thread(handler.flush, 20)
    finally:
        await asyncio.to_thread(handler.close)
    by_message = await logged(api, contributor)
    assert set(by_message) == {"before", "huge", "after"} and handler.lost == 0
    huge = by_message["huge"]["data"]
    assert huge["small"] == 1 and "blob" not in huge
    assert huge["log"]["truncated"]["dropped"] == ["blob"] and huge["log"]["truncated"]["bytes"] > 5_000_000
    assert huge["log"]["exception"].endswith("x" * 100) and len(huge["log"]["exception"]) < 40_000

    # A handler told it may send more than this server takes: the server refuses that record alone.
    handler = GraphlakeLogHandler(served.base_url, contributor, flush_interval=5, max_data_bytes=4_000_000,
                                  event_type="LARGE_LOG")
    logger = logger_with(handler)
    try:
        logger.info("first")
        logger.info("too large", extra={"blob": "b" * 2_000_000})
        logger.info("last")
        await asyncio.to_thread(handler.flush, 20)
    finally:
        await asyncio.to_thread(handler.close)
    assert set(await logged(api, contributor, "LARGE_LOG")) == {"first", "last"} and handler.lost == 1
    assert "refused a log record, sent without it" in capfd.readouterr().err


async def test_a_refusal_every_record_shares_fails_the_batch_at_once(served: Served, contributor: str,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """An event type the server refuses is every record's: the batch fails in one request, said once,
    not peeled a record at a time (a request each, down to an empty batch)."""
    handler = GraphlakeLogHandler(served.base_url, contributor, flush_interval=5, event_type="not a type!", retries=0)
    logger = logger_with(handler)
    try:
        for i in range(3):
            logger.info("record %d", i)
        await asyncio.to_thread(handler.flush, 20)
    finally:
        await asyncio.to_thread(handler.close)
    err = capfd.readouterr().err
    assert handler.lost == 3 and "refused a log record" not in err and err.count("not confirmed stored") == 1, err


async def test_batches_stay_under_the_request_body_limit(served: Served, api: Api, contributor: str,
                                                        settings: Settings) -> None:
    # 24 records of 900 KB: 21 MB, past the 16 MiB body a server takes in one request.
    assert 24 * 900_000 > settings.max_body_bytes
    handler = GraphlakeLogHandler(served.base_url, contributor, flush_interval=5, max_data_bytes=1_000_000)
    logger = logger_with(handler)
    try:
        for i in range(24):
            logger.info("record %d", i, extra={"blob": "b" * 900_000})
        await asyncio.to_thread(handler.flush, 60)
    finally:
        await asyncio.to_thread(handler.close)
    count = (await api.data("Events", {"filter": {"eventTypes": ["PYTHON_LOG"]}, "first": 1}, token=contributor))
    assert handler.lost == 0 and count["events"]["totalCount"] == 24


def test_closing_a_sync_client_whose_loop_is_held_does_not_hang(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A coroutine that never yields (a blocking call inside it) holds the SyncClient's loop: closing,
    and so the interpreter's exit, which closes a client never closed, waited for it for good. It
    waits CLOSE_SECONDS, says so, and returns."""
    from graphlake_client import sync

    monkeypatch.setattr(sync, "CLOSE_SECONDS", 0.2)
    lake = SyncClient("http://127.0.0.1:9", None)
    released = threading.Event()

    async def hold() -> None:
        released.wait(30)  # blocks the loop's thread, as a blocking call in a coroutine does

    asyncio.run_coroutine_threadsafe(hold(), lake._loop)
    try:
        lake.close()
        assert not released.is_set()  # close returned while the loop was still held
        assert "did not close within 0.2 s" in capsys.readouterr().err
    finally:
        released.set()
