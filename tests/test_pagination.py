"""Keyset connections: complete, duplicate-free pages even when sort keys tie, and stable under inserts.
The keyset filters and cursors themselves, without a database: tests/unit/test_pagination.py."""

from __future__ import annotations

import base64
import json

import orjson

from documents.api_token import ApiToken
from documents.clock import utcnow
from documents.roles import Role
from resolvers.pagination import MAX_CURSOR_CHARS, encode_cursor
from tests import factories
from tests.conftest import MakeToken
from tests.operations import Api


async def walk(api: Api, token: str, first: int) -> list[str]:
    names, after = [], None
    while True:
        page = (await api.data("ApiTokens", {"first": first, "after": after}, token=token))["apiTokens"]
        names += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return names
        after = page["pageInfo"]["endCursor"]


async def test_pages_cover_everything_once_when_timestamps_tie(api: Api, admin: str, make_token: MakeToken) -> None:
    for i in range(11):
        await make_token(Role.VIEWER, name=f"t{i:02d}")
    same = utcnow()
    await ApiToken.get_pymongo_collection().update_many({}, {"$set": {"created_at": same}})
    names = await walk(api, admin, first=3)
    assert len(names) == 12 and len(set(names)) == 12
    page = (await api.data("ApiTokens", {"first": 3}, token=admin))["apiTokens"]
    assert page["totalCount"] == 12 and page["pageInfo"]["hasPreviousPage"] is False


async def test_cursor_is_stable_when_newer_items_arrive(api: Api, admin: str, make_token: MakeToken) -> None:
    for i in range(4):
        await make_token(Role.VIEWER, name=f"old{i}")
    first_page = (await api.data("ApiTokens", {"first": 2}, token=admin))["apiTokens"]
    seen = [e["node"]["name"] for e in first_page["edges"]]
    await make_token(Role.VIEWER, name="newest")  # lands before the first page: must not shift the next one
    rest = (await api.data("ApiTokens", {"first": 10, "after": first_page["pageInfo"]["endCursor"]}, token=admin))
    rest_names = [e["node"]["name"] for e in rest["apiTokens"]["edges"]]
    assert "newest" not in rest_names
    assert set(seen) | set(rest_names) == {"old0", "old1", "old2", "old3"} | {n for n in seen + rest_names if n.startswith("admin")}
    assert not set(seen) & set(rest_names)


async def test_foreign_cursor_is_refused(api: Api, admin: str) -> None:
    operators = base64.urlsafe_b64encode(b'[{"$ne":null},{"$ne":null}]').decode()  # once reached the database
    for bad in ["garbage!", "WzFd", encode_cursor({"x": 1}, [("x", 1)], scope="api_tokens"), operators]:
        error = await api.error("ApiTokens", {"after": bad}, token=admin)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    # A real cursor's value made an int beyond BSON's 8 bytes (orjson reads up to 2**64 - 1): PyMongo
    # refused it as the query was built, and the list answered INTERNAL.
    await factories.value_asset(api, admin, name="a")
    await factories.value_asset(api, admin, name="b")
    order = {"field": "SIZE", "direction": "ASC"}
    cursor = (await api.data("Assets", {"orderBy": order, "first": 1}, token=admin))["assets"]["pageInfo"]["endCursor"]
    tag, *values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for huge in (2**63, 2**64 - 1):
        forged = base64.urlsafe_b64encode(json.dumps([tag, huge, *values[1:]]).encode()).decode().rstrip("=")
        error = await api.error("Assets", {"orderBy": order, "after": forged}, token=admin)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}, huge
    fits = base64.urlsafe_b64encode(orjson.dumps([tag, 2**63 - 1, *values[1:]])).decode().rstrip("=")
    assert (await api.data("Assets", {"orderBy": order, "after": fits}, token=admin))["assets"]["edges"] == []


async def test_a_list_in_name_order_pages_past_long_names(api: Api, contributor: str) -> None:
    """A cursor holds its item's sort key: an asset's name of 500 accented letters made one of 1,398
    characters, which the bound on a query's strings (1,000) refused, so no page after it could be read."""
    names = sorted(f"{i}" + ("é" if i % 2 else "日") * 499 for i in range(4))
    for name in names:
        await factories.value_asset(api, contributor, name=name)
    order, seen, after = {"field": "NAME", "direction": "ASC"}, [], None
    while True:
        page = (await api.data("Assets", {"orderBy": order, "first": 1, "after": after}, token=contributor))["assets"]
        seen += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert len(after) > 1000
    assert seen == names
    back = (await api.data("Assets", {"orderBy": order, "last": 2, "before": after}, token=contributor))["assets"]
    assert [edge["node"]["name"] for edge in back["edges"]] == names[:2]  # before the third, whose cursor `after` is
    written = await api.run("x", query=f'query x {{ assets(orderBy: {{field: NAME, direction: ASC}}, after: "{after}") '
                                       "{ edges { node { name } } } }", token=contributor)
    assert [edge["node"]["name"] for edge in written["data"]["assets"]["edges"]] == names[3:]
    # Still bounded: by the longest cursor the server writes, and any other string by the query's bound.
    error = await api.error("Assets", {"orderBy": order, "after": "A" * (MAX_CURSOR_CHARS + 1)}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    error = await api.error("x", {"c": after}, query="query x($c: String) { assets(after: $c, filter: {nameContains: $c}) "
                                                     "{ totalCount } }", token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "c"}


async def test_a_cursor_works_only_in_the_list_it_came_from(api: Api, contributor: str) -> None:
    """A cursor was tagged with its order alone, so one from another list in the same order was read
    as a position in this one: the page silently started elsewhere. A cursor of one version's datums
    gave another version's from its start (its members are newer), one of `collections` went on in
    `datasets`. A list's own cursors, under any filter, still go on in it."""
    d = await factories.datums(api, contributor, 4, roles=("image",))
    ds = await factories.dataset(api, contributor)
    v1 = await factories.version(api, contributor, ds["id"], "v1", addDatums=[x["id"] for x in d[:2]])
    v2 = await factories.version(api, contributor, ds["id"], "v2", addDatums=[x["id"] for x in d])
    of_v1 = (await api.data("DatasetVersion", {"id": v1["id"], "first": 1}, token=contributor))["datasetVersion"]["datums"]
    error = await api.error("DatasetVersion", {"id": v2["id"], "after": of_v1["pageInfo"]["endCursor"]}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    walked, after = [], None  # a first page (one read for every parent) and the later ones (its own) agree
    while True:
        page = (await api.data("DatasetVersion", {"id": v2["id"], "first": 1, "after": after},
                               token=contributor))["datasetVersion"]["datums"]
        walked += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(walked) == sorted(x["id"] for x in d)

    await factories.collection(api, contributor, "c1")
    await factories.collection(api, contributor, "c2")
    of_collections = (await api.data("Collections", {"first": 1}, token=contributor))["collections"]
    cursor = (await api.run("x", query="query x { collections(first: 1) { pageInfo { endCursor } } }",
                            token=contributor))["data"]["collections"]["pageInfo"]["endCursor"]
    assert of_collections["totalCount"] == 2
    error = await api.error("Datasets", {"after": cursor}, token=contributor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    rest = (await api.data("Collections", {"nameContains": "c", "after": cursor}, token=contributor))["collections"]
    assert [edge["node"]["name"] for edge in rest["edges"]] == ["c1"]


async def test_a_versions_copies_of_records_take_none_of_the_live_records_cursors(api: Api, contributor: str) -> None:
    """A version keeps copies of a datum's records, with ids of their own: a cursor of the datum's live
    records is no position among them (read as one, it listed every copy, the first included)."""
    (datum,) = await factories.datums(api, contributor, 1, roles=("image",))
    labels = await factories.labelled_set(api, contributor, [datum])
    ds = await factories.dataset(api, contributor)
    version = await factories.version(api, contributor, ds["id"], "v1", addDatums=[datum["id"]], addAnnotationSets=[labels["id"]])
    live = (await api.run("x", query=f'query x {{ datum(id: "{datum["id"]}") {{ annotations(first: 1) '
                                     "{ pageInfo { endCursor } } } }", token=contributor))["data"]
    cursor = live["datum"]["annotations"]["pageInfo"]["endCursor"]
    frozen = await api.run("x", query=f'query x {{ datasetVersion(id: "{version["id"]}") {{ datums(first: 1) {{ edges '
                                      f'{{ node {{ annotations(after: "{cursor}") {{ edges {{ cursor }} }} }} }} }} }} }}',
                           token=contributor)
    assert [error["extensions"] for error in frozen["errors"]] == [{"code": "BAD_USER_INPUT", "field": "after"}]
    own = await api.run("x", query=f'query x {{ datasetVersion(id: "{version["id"]}") {{ datums(first: 1) {{ edges '
                                   "{ node { annotations(first: 1) { edges { cursor } } } } } } }", token=contributor)
    copy = own["data"]["datasetVersion"]["datums"]["edges"][0]["node"]["annotations"]["edges"][0]["cursor"]
    rest = await api.run("x", query=f'query x {{ datasetVersion(id: "{version["id"]}") {{ datums(first: 1) {{ edges '
                                    f'{{ node {{ annotations(after: "{copy}") {{ edges {{ cursor }} }} }} }} }} }} }}',
                         token=contributor)
    assert "errors" not in rest and rest["data"]["datasetVersion"]["datums"]["edges"][0]["node"]["annotations"]["edges"] == []


async def test_times_whose_milliseconds_a_float_misses_keep_their_ties_together(api: Api, contributor: str) -> None:
    """A cursor held a time as int(timestamp() * 1000) and read it back through a float: 2004-10-05
    20:17:19.465 became ...464.9999, so .464, and 1900-08-14 10:21:53.616 was read back as .617 (about
    one time in ten over most of 2004, and before 1970 or after 2100). Off by a millisecond, the page
    after one ending in such a time skipped the items tied with it (newest first) or gave them again,
    without end (oldest first)."""
    for when in ("2004-10-05T20:17:19.465Z", "1900-08-14T10:21:53.616Z"):
        made = {(await factories.value_asset(api, contributor, name=f"{when[:4]}-{i}", dataTimestamp=when))["id"]
                for i in range(5)}
        for direction in ("DESC", "ASC"):
            order, seen, after = {"field": "DATA_TIMESTAMP", "direction": direction}, [], None
            filter = {"nameContains": f"{when[:4]}-"}
            for _ in range(10):
                page = (await api.data("Assets", {"filter": filter, "orderBy": order, "first": 2, "after": after},
                                       token=contributor))["assets"]
                seen += [edge["node"]["id"] for edge in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            assert sorted(seen) == sorted(made), (when, direction)
