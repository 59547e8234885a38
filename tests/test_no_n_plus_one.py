"""No N+1 anywhere in the API: every field that reads other documents, selected under a page of N
parents, costs as many database commands at N = 12 as at N = 3.

One world is seeded for the module (three "units" of linked data, measured, then nine more,
measured again): each unit is an asset with an alias, lineage, pins, a collection, a datum with
records (one superseded, one a mask) in its own schema and set, a dataset of two versions, an
upload session and an event. Each case below lists the page of all units' parents of one type and
selects one field (or a few of the same kind); the test of a case compares its two counts. A
mutation's case is run with 3 and with 12 inputs instead. A new field that reads other documents
gets a case here.

tests/test_round_trips.py holds the deeper checks of a few of these (budgets, version pages).
Types with no field that reads another document (ApiToken, Event, the tallies, UtilizationRow, whose
sessions come with it) are listed once or not at all; `summary` and `bundles` answer one object.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from documents.roles import Role
from graphlake.settings import Settings
from services.auth import create_token
from tests import factories
from tests.conftest import S3Service, Served, wipe
from tests.operations import Api

SMALL, LARGE = 3, 12


@dataclass
class World:
    """The ids of what each unit made (one entry a unit), by kind."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    against: str = ""  # the first unit's v1: what every diff is taken against
    whole: str = ""  # a version of every unit's datum, built before each measure
    s3: S3Service | None = None  # the bucket registerExternal lists
    root: Path | None = None  # the directory ingestFiles copies from

    def add(self, kind: str, value: str) -> None:
        self.ids.setdefault(kind, []).append(value)


async def run(api: Api, token: str, query: str, variables: dict | None = None) -> dict:
    body = await api.run("Probe", variables or {}, token=token, query=query)
    assert not body.get("errors"), body["errors"]
    return body["data"]


async def image(api: Api, token: str, name: str, **fields: Any) -> str:
    return (await factories.image_asset(api, token, name, **fields))["id"]


async def add_unit(api: Api, token: str, world: World, i: int) -> None:
    src = await image(api, token, f"src-{i}", labels=["np-src"])
    asset = await image(api, token, f"a-{i}.png", labels=["np"], aliases=[f"np-{i}"], derivedFrom=[src],
                        owner={"userId": "np-user"})
    mask = await image(api, token, f"m-{i}.png", labels=["np-mask"])
    coll = await factories.collection(api, token, f"np-coll-{i:02}")
    await api.data("AddToCollection", {"input": {"collectionId": coll["id"], "items": [
        {"assetId": asset, "path": f"p{i}/a", "split": "TRAIN"}, {"assetId": mask, "path": f"q{i}/m"}]}}, token=token)
    pin = (await api.data("PinAsset", {"assetId": asset}, token=token))["pinAsset"]
    [datum] = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": asset},
                                                                      {"role": "mask", "assetId": mask}],
                                                           "split": "TRAIN", "metadata": {"i": i}}]}, token=token))["createDatums"]
    [extra] = (await api.data("CreateDatums", {"inputs": [{"roles": [{"role": "image", "assetId": mask}],
                                                           "split": "TEST"}]}, token=token))["createDatums"]
    schema = await factories.schema(api, token, f"np-schema-{i:02}")
    labels = await factories.annotation_set(api, token, schema["id"], name=f"np-set-{i:02}")
    records = (await api.data("AddAnnotations", {"setId": labels["id"], "records": [
        {"assetId": asset, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "dent"},
        {"assetId": asset, "datumId": datum["id"], "kind": "MASK", "label": "dent", "geometry": {"mask": {"assetId": mask}}},
    ]}, token=token))["addAnnotations"]["ids"]
    fixed = (await api.data("SupersedeAnnotation", {"input": {"id": records[0], "reason": "wrong", "record": {
        "assetId": asset, "datumId": datum["id"], "kind": "CLASSIFICATION", "label": "scratch"}}}, token=token))
    await api.data("VerifyAnnotations", {"ids": [records[1]], "verified": True}, token=token)
    dataset = await factories.dataset(api, token, f"np-ds-{i:02}")
    v1 = await factories.version(api, token, dataset["id"], "v1", addDatums=[datum["id"]], addAnnotationSets=[labels["id"]])
    await api.data("UpdateDatum", {"input": {"id": datum["id"], "split": "VALIDATION"}}, token=token)
    v2 = await factories.version(api, token, dataset["id"], "v2", parentId=v1["id"], addDatums=[extra["id"]])
    upload = (await api.data("CreateUpload", {"input": {"name": f"up-{i}", "sizeBytes": 3, "mediaType": "text/plain",
                                                        "direct": False}}, token=token))["createUpload"]
    event = (await api.data("LogEvent", {"input": {"eventType": "np", "source": {"userId": "np-user"}}},
                            token=token))["logEvent"]
    world.against = world.against or v1["id"]
    for kind, value in [("src", src), ("asset", asset), ("mask", mask), ("collection", coll["id"]), ("pin", pin["id"]),
                        ("datum", datum["id"]), ("schema", schema["id"]), ("set", labels["id"]), ("record", records[1]),
                        ("superseded", records[0]), ("fix", fixed["supersedeAnnotation"]["id"]),
                        ("dataset", dataset["id"]), ("v1", v1["id"]), ("v2", v2["id"]), ("upload", upload["id"]),
                        ("event", event["id"]), ("alias", f"np-{i}"), ("dataset_name", f"np-ds-{i:02}")]:
        world.add(kind, value)


@dataclass(frozen=True)
class Case:
    """A page of N parents (`parents` finds them in the answer) selecting a field; `ok` checks that a
    parent's answer holds something, so a count cannot be flat for want of anything to read."""

    query: str | Callable[[World], str]  # a function of the world: a query of one field per unit (aliases)
    parents: Callable[[dict], list[dict]]
    ok: Callable[[dict], bool] = lambda node: True
    variables: Callable[[World], dict] = lambda world: {}
    per_unit: int = 1


def edges(connection: dict) -> list[dict]:
    return [edge["node"] for edge in connection["edges"]]


def page_of(root: str, arguments: str, selection: str) -> str:
    arguments = ", ".join(a for a in (arguments, "first: 50") if a)
    declared = "($against: ID!)" if "$against" in selection else ""
    return f"query Probe{declared} {{ {root}({arguments}) {{ edges {{ node {{ id {selection} }} }} }} }}"


def listing(root: str, arguments: str, per_unit: int = 1) -> Callable[[str, Callable[[dict], bool]], Case]:
    def case(selection: str, ok: Callable[[dict], bool] = lambda node: True) -> Case:
        return Case(page_of(root, arguments, selection), lambda data: edges(data[root]), ok,
                    lambda world: {"against": world.against} if "$against" in selection else {}, per_unit)
    return case


assets = listing("assets", 'filter: {labelsAll: ["np"]}')
sources = listing("assets", 'filter: {labelsAll: ["np-src"]}')
collections = listing("collections", 'nameContains: "np-coll"')
datums = listing("datums", 'role: "mask"')
datasets = listing("datasets", 'nameContains: "np-ds"')
sets = listing("annotationSets", "")
schemas = listing("annotationSchemas", "")
records = listing("annotations", "filter: {includeSuperseded: true}", per_unit=3)  # superseded, its fix, a mask
events = listing("events", 'filter: {eventTypes: ["np"], includeArchived: false}, orderBy: TIMESTAMP, direction: DESC')


def last(listed: Callable[..., Case], connection: str, node: str = "id", *, within: str = "") -> Case:
    """Each parent's `connection(last: 1)` (of its field `within`, if given), selecting `node` of its
    item: a page read from the end, which must hold that one item."""
    selection = f"{connection}(last: 1) {{ edges {{ node {{ {node} }} }} }}"
    if within:
        return listed(f"{within} {{ {selection} }}", lambda n: len(n[within][connection]["edges"]) == 1)
    return listed(selection, lambda n: len(n[connection]["edges"]) == 1)


RECORD = "set { name schema { name } } asset { id } datum { id split } supersedes { id } supersededBy { id } " \
         "geometry { ... on Mask { asset { id } } }"
VERSION = "version dataset { name } parent { version } content { sha256 downloadUrl } splitCounts { split count } " \
          "datumCount"

CASES: dict[str, Case] = {
    # Assets
    "Asset.aliases": assets("aliases", lambda n: n["aliases"]),
    "Asset.derivedFrom": assets("derivedFrom { id name }", lambda n: n["derivedFrom"]),
    "Asset.derivedAssets": sources("derivedAssets(first: 5) { totalCount edges { node { id } } }",
                                   lambda n: n["derivedAssets"]["totalCount"] == 1),
    "Asset.collections": assets("collections(first: 5) { totalCount edges { node { name itemCount } } }",
                                lambda n: n["collections"]["totalCount"] == 1),
    "Asset.retentions": assets("retentions { ownerType ownerId asset { id } }", lambda n: len(n["retentions"]) >= 2),
    "Asset.pins": assets("pins(first: 5) { totalCount edges { node { ownerType asset { id } } } }",
                         lambda n: n["pins"]["totalCount"] >= 2),
    "Asset.pins(last)": last(assets, "pins", "ownerType"),
    "Asset.annotations": assets(f"annotations(first: 5) {{ totalCount edges {{ node {{ {RECORD} }} }} }}",
                                lambda n: n["annotations"]["totalCount"] == 2),
    "Asset.annotations(filter)": assets("annotations(filter: {includeSuperseded: true, kinds: [CLASSIFICATION]}) "
                                        "{ totalCount edges { node { id } } }",
                                        lambda n: n["annotations"]["totalCount"] == 2),
    "Asset.annotations(last)": last(assets, "annotations"),
    "Asset.datums": assets("datums(first: 5) { totalCount edges { node { id roles { asset { id } } } } }",
                           lambda n: n["datums"]["totalCount"] == 1),
    "Asset.payload": assets("downloadUrl thumbnailUrl storage { uri } value text metadata owner { userId } labels",
                            lambda n: n["owner"]["userId"] == "np-user"),
    # Collections and their items
    "Collection.itemCount": collections("itemCount", lambda n: n["itemCount"] == 2),
    "Collection.items": collections("items(first: 5) { totalCount edges { node { path collection { name } asset { id name } } } }",
                                    lambda n: n["items"]["totalCount"] == 2),
    "Collection.items(pathPrefix, split)": collections(
        'a: items(pathPrefix: "p") { totalCount edges { node { path } } } '
        "b: items(split: TRAIN) { totalCount edges { node { path } } }",
        lambda n: n["a"]["totalCount"] == 1 == n["b"]["totalCount"]),
    "Collection.items(last)": last(collections, "items", "asset { id }"),
    # Datums
    "Datum.roles": datums('roles { role asset { id name } } asset(role: "mask") { id }', lambda n: n["asset"]),
    "Datum.annotations": datums(f"annotations(first: 5) {{ totalCount edges {{ node {{ {RECORD} }} }} }}",
                                lambda n: n["annotations"]["totalCount"] == 2),
    "Datum.annotations(filter)": datums("annotations(filter: {includeSuperseded: true, verified: false}) "
                                        "{ totalCount edges { node { supersededBy { id } } } }",
                                        lambda n: n["annotations"]["totalCount"] == 2),
    "Datum.annotations(last)": last(datums, "annotations"),
    # Datasets and versions
    "Dataset.versions": datasets(f"versions(first: 5) {{ totalCount edges {{ node {{ {VERSION} }} }} }}",
                                 lambda n: n["versions"]["totalCount"] == 2),
    "Dataset.versions(last)": last(datasets, "versions", "version"),
    "Dataset.latest": datasets(f"latest {{ {VERSION} }}", lambda n: n["latest"]["parent"]["version"] == "v1"),
    "Dataset.version": datasets('version(version: "v1") { id version }', lambda n: n["version"]),
    "Dataset.version(aliased)": datasets('a: version(version: "v1") { id } b: version(version: "v2") { id } '
                                         'c: version(version: "v9") { id }', lambda n: n["a"] and n["b"] and not n["c"]),
    "DatasetVersion.datums": datasets(
        "versions(first: 5) { edges { node { datums(first: 5) { totalCount edges { node { id roles { asset { id } } "
        f"annotations(first: 5) {{ totalCount edges {{ node {{ {RECORD} }} }} }} }} }} }} }} }} }}",
        lambda n: all(v["datums"]["totalCount"] for v in edges(n["versions"]))),
    "DatasetVersion.datums(split)": datasets("latest { datums(split: TEST) { totalCount edges { node { id } } } }",
                                             lambda n: n["latest"]["datums"]["totalCount"] == 1),
    "DatasetVersion.datums(last)": last(datasets, "datums", within="latest"),
    "DatasetVersion.annotationSets": datasets("latest { annotationSets { name recordCount schema { name } } }",
                                              lambda n: n["latest"]["annotationSets"]),
    "DatasetVersion.annotationCounts": datasets("latest { annotationCounts { records set { name } } }",
                                                lambda n: n["latest"]["annotationCounts"][0]["records"] == 2),
    "DatasetVersion.verification": datasets("latest { verification { ok datums records } }",
                                            lambda n: n["latest"]["verification"]["ok"]),
    "DatasetVersion.diff": datasets(
        "latest { diff(against: $against) { addedCount removedCount changedCount "
        "added(first: 5) { totalCount edges { node { id annotations(first: 5) { edges { node { id datum { id } } } } } } } "
        "removed(first: 5) { edges { node { id roles { asset { id } } } } } changed(first: 5) { edges { node { id split } } } } }",
        lambda n: n["latest"]["diff"]["addedCount"] >= 1),
    # Annotation schemas, sets, records
    "AnnotationSchema": schemas("name labels { name } kinds", lambda n: n["labels"]),
    "AnnotationSet.schema": sets("schema { name } recordCount", lambda n: n["recordCount"] == 3),
    "AnnotationSet.records": sets(f"records(first: 5) {{ totalCount edges {{ node {{ {RECORD} }} }} }}",
                                  lambda n: n["records"]["totalCount"] == 2),
    "AnnotationSet.records(filter)": sets("records(filter: {verified: true}) { totalCount edges { node { id } } }",
                                          lambda n: n["records"]["totalCount"] == 1),
    "AnnotationSet.records(last)": last(sets, "records"),
    "AnnotationRecord": records(RECORD, lambda n: n["set"]),
    # Events: no field reads another document
    "Event": events("eventType source { userId } data origin", lambda n: n["source"]["userId"] == "np-user"),
}


def nodes_case(kinds: tuple[str, ...], selection: str, ok: Callable[[dict], bool] = lambda node: True) -> Case:
    query = f"query Probe($ids: [ID!]!) {{ nodes(ids: $ids) {{ id {selection} }} }}"
    return Case(query, lambda data: data["nodes"], ok,
                lambda world: {"ids": [i for kind in kinds for i in world.ids[kind]]}, len(kinds))


MIXED = """
... on Asset { aliases derivedFrom { id } pins(first: 5) { totalCount } }
... on Collection { itemCount items(first: 5) { edges { node { asset { id } } } } }
... on Datum { roles { asset { id } } annotations(first: 5) { totalCount edges { node { set { name } } } } }
... on Dataset { latest { version } versions(first: 5) { totalCount } }
... on DatasetVersion { dataset { name } parent { id } datums(first: 5) { totalCount edges { node { id } } } }
... on AnnotationSet { schema { name } recordCount }
... on AnnotationRecord { set { name } asset { id } datum { id } supersedes { id } }
... on AnnotationSchema { name }
... on AssetRetention { asset { id } }
... on UploadSession { status url asset { id status } }
... on Event { eventType }
"""
CASES |= {
    "nodes(mixed)": nodes_case(("asset", "collection", "datum", "dataset", "v2", "set", "fix", "schema", "pin", "upload",
                                "event"), MIXED, lambda n: n is not None),
    "nodes(UploadSession)": nodes_case(("upload",), "... on UploadSession { status url headers asset { id status } }",
                                       lambda n: n["asset"]),
    "nodes(AssetRetention)": nodes_case(("pin",), "... on AssetRetention { ownerType asset { id } }", lambda n: n["asset"]),
}


WHOLE = """
... on DatasetVersion { datums(first: 20) { totalCount edges { node { id roles { asset { id } }
  annotations(first: 5) { edges { node { set { name } supersedes { id } } } } } } } }
"""
SPLIT = "{ edges { node { id roles { asset { id } } annotations(first: 5) { edges { node { set { name } } } } } } }"
CASES |= {
    # One parent, N children: a version of every unit's datum, and a training split of it
    "DatasetVersion.datums(one version)": Case(
        f"query Probe($id: ID!) {{ node(id: $id) {{ id {WHOLE} }} }}", lambda data: edges(data["node"]["datums"]),
        lambda n: n["annotations"]["edges"], lambda world: {"id": world.whole}),
    "TrainingSplit": Case(
        "query Probe($id: ID!) { trainingSplit(datasetVersion: $id, ratios: {train: 0.5, validation: 0.25, test: 0.25}) "
        f"{{ train(first: 20) {SPLIT} validation(first: 20) {SPLIT} test(first: 20) {SPLIT} }} }}",
        lambda data: [n for part in data["trainingSplit"].values() for n in edges(part)],
        lambda n: n["annotations"]["edges"], lambda world: {"id": world.whole}),
    # What the lake holds of one user: each unit's asset and event name np-user
    "privacyExport": Case(
        'query Probe { privacyExport(userId: "np-user", limitPerCollection: 50) { places { collection documents } } }',
        lambda data: next(p["documents"] for p in data["privacyExport"]["places"] if p["collection"] == "assets")),
}


def aliased_case(on: str, fields: tuple[tuple[str, str], ...], selection: str,
                 ok: Callable[[dict], bool] = lambda node: node is not None) -> Case:
    """Each of `fields` (a by-id root, a kind) once for each unit's object of that kind, under aliases:
    root fields run together, so N of one type are one read, as in `nodes(ids:)`, whichever roots
    (`node`, `asset`) ask. The selection is a fragment on `on`, given once (a document has at most
    2,000 tokens; at most 30 aliases)."""
    def names(world: World) -> list[tuple[str, str, str]]:
        return [(f"{root}_{kind}{k}", root, i) for root, kind in fields for k, i in enumerate(world.ids[kind])]

    def query(world: World) -> str:
        declared = ", ".join(f"${name}: ID!" for name, _, _ in names(world))
        asked = " ".join(f"{name}: {root}(id: ${name}) {{ ...Selected }}" for name, root, _ in names(world))
        return f"query Probe({declared}) {{ {asked} }} fragment Selected on {on} {{ id {selection} }}"

    return Case(query, lambda data: list(data.values()), ok,
                lambda world: {name: i for name, _, i in names(world)}, len(fields))


CASES |= {
    # By-id roots under aliases (a client's batch of lookups): each type read once, whatever their number
    "node(id:) aliased": aliased_case("Asset", (("node", "asset"),), "name aliases", lambda n: n["aliases"]),
    "node(id:) aliased(two types)": aliased_case(
        "Node", (("node", "asset"), ("node", "v2")),
        "... on Asset { name derivedFrom { id } } ... on DatasetVersion { version dataset { name } }"),
    "node(id:) and asset(id:) aliased": aliased_case("Asset", (("node", "src"), ("asset", "asset")), "name"),
    "asset(id:) aliased": aliased_case("Asset", (("asset", "asset"),), "name derivedFrom { id }", lambda n: n["derivedFrom"]),
    "datum(id:) aliased": aliased_case("Datum", (("datum", "datum"),), "roles { asset { id } }", lambda n: n["roles"]),
    "collection(id:) aliased": aliased_case("Collection", (("collection", "collection"),), "name itemCount",
                                            lambda n: n["itemCount"] == 2),
    "dataset(id:) aliased": aliased_case("Dataset", (("dataset", "dataset"),), "name latest { version }",
                                         lambda n: n["latest"]["version"] == "v2"),
    "datasetVersion(id:) aliased": aliased_case("DatasetVersion", (("datasetVersion", "v1"), ("node", "v2")),
                                                "version dataset { name }", lambda n: n["dataset"]),
    "uploadSession(id:) aliased": aliased_case("UploadSession", (("uploadSession", "upload"), ("node", "upload")),
                                               "status url asset { id status }", lambda n: n["url"] and n["asset"]),
    "event(id:) aliased": aliased_case("Event", (("event", "event"),), "eventType", lambda n: n["eventType"] == "np"),
}


def named_case(on: str, fields: tuple[tuple[str, str, str], ...], selection: str,
               ok: Callable[[dict], bool] = lambda node: node is not None) -> Case:
    """As aliased_case, for roots that find an object by name: each of `fields` (a root, its arguments
    with `$name` where a name goes, the kind of name) once for each unit's name of that kind, under
    aliases. N names of one kind are one read, whichever roots ask."""
    def names(world: World) -> list[tuple[str, str, str, str]]:
        return [(f"{root}_{kind}{k}", root, arguments.replace("$name", f"${root}_{kind}{k}"), name)
                for root, arguments, kind in fields for k, name in enumerate(world.ids[kind])]

    def query(world: World) -> str:
        declared = ", ".join(f"${alias}: String!" for alias, _, _, _ in names(world))
        asked = " ".join(f"{alias}: {root}({arguments}) {{ ...Selected }}" for alias, root, arguments, _ in names(world))
        return f"query Probe({declared}) {{ {asked} }} fragment Selected on {on} {{ id {selection} }}"

    return Case(query, lambda data: list(data.values()), ok,
                lambda world: {alias: name for alias, _, _, name in names(world)}, len(fields))


CASES |= {
    # By-name roots under aliases: N names of one kind are one read (and what they name, one more)
    "assetByAlias aliased": named_case("Asset", (("assetByAlias", "alias: $name", "alias"),), "name derivedFrom { id }",
                                       lambda n: n["derivedFrom"]),
    "dataset(name:) aliased": named_case("Dataset", (("dataset", "name: $name", "dataset_name"),), "name latest { version }",
                                         lambda n: n["latest"]["version"] == "v2"),
    "datasetVersion(dataset:, version:) and dataset(name:) aliased": named_case(
        "Node", (("datasetVersion", 'dataset: $name, version: "v1"', "dataset_name"), ("dataset", "name: $name", "dataset_name")),
        '... on DatasetVersion { version dataset { name } } ... on Dataset { name latest { version } }',
        lambda n: n["dataset"]["name"] if "dataset" in n else n["latest"]["version"] == "v2"),
}


@dataclass(frozen=True)
class Mutation:
    """A mutation given `n` inputs: `prepare` makes what it needs (not counted) and gives its variables;
    `done` tells from its answer that it did the `n` things asked."""

    query: str
    prepare: Callable[[Api, str, World, int], Awaitable[dict]]
    done: Callable[[dict, int], bool]


async def fresh_assets(api: Api, token: str, n: int, tag: str) -> list[str]:
    return [await image(api, token, f"{tag}-{k}.png") for k in range(n)]


async def create_datums_inputs(api: Api, token: str, world: World, n: int) -> dict:
    assets_made = await fresh_assets(api, token, n, f"cd{n}")
    return {"inputs": [{"roles": [{"role": "image", "assetId": a}], "split": "TRAIN"} for a in assets_made]}


async def add_annotations_inputs(api: Api, token: str, world: World, n: int) -> dict:
    return {"setId": world.ids["set"][0], "records": [
        {"assetId": world.ids["asset"][k], "datumId": world.ids["datum"][k], "kind": "CLASSIFICATION", "label": "dent"}
        for k in range(n)]}


async def verify_inputs(api: Api, token: str, world: World, n: int) -> dict:
    return {"ids": world.ids["record"][:n]}


async def add_to_collection_inputs(api: Api, token: str, world: World, n: int, name: str = "target") -> dict:
    coll = await factories.collection(api, token, f"{name}-{n}")
    assets_made = await fresh_assets(api, token, n, f"atc{n}")
    return {"input": {"collectionId": coll["id"], "items": [{"assetId": a, "path": a} for a in assets_made]}}


async def create_uploads_inputs(api: Api, token: str, world: World, n: int) -> dict:
    return {"inputs": [{"name": f"cu{n}-{k}", "sizeBytes": 3, "mediaType": "text/plain", "direct": False,
                        "collectionId": world.ids["collection"][0]} for k in range(n)]}


async def complete_uploads_inputs(api: Api, token: str, world: World, n: int) -> dict:
    made = (await api.data("CreateUploads", {"inputs": [
        {"name": f"done{n}-{k}", "sizeBytes": 3, "mediaType": "text/plain", "direct": False,
         "collectionId": world.ids["collection"][0]} for k in range(n)]}, token=token))["createUploads"]
    async with httpx.AsyncClient(timeout=60) as http:
        for session in made:
            (await http.put(session["url"], content=b"abc", headers=session["headers"])).raise_for_status()
    return {"ids": [s["id"] for s in made]}


async def derived_inputs(api: Api, token: str, world: World, n: int) -> dict:
    return {"input": {"name": f"derived-{n}", "text": "t", "mediaType": "text/plain", "derivedFrom": world.ids["asset"][:n]}}


async def version_inputs(api: Api, token: str, world: World, n: int) -> dict:
    """A version of the first `n` units' datums and the first unit's set: a build reads each of up to
    8 sets on its own (services/snapshots._records_of), a bound of its own."""
    dataset = await factories.dataset(api, token, f"built-{n}")
    return {"input": {"datasetId": dataset["id"], "version": "v1", "addDatums": world.ids["datum"][:n],
                      "addAnnotationSets": world.ids["set"][:1]}}


async def whole_version(api: Api, token: str, world: World) -> str:
    """A version of every unit's datum and set."""
    dataset = await factories.dataset(api, token, f"whole-{len(world.ids['datum'])}")
    return (await factories.version(api, token, dataset["id"], "v1", addDatums=world.ids["datum"],
                                    addAnnotationSets=world.ids["set"]))["id"]


async def events_inputs(api: Api, token: str, world: World, n: int) -> dict:
    return {"inputs": [{"eventType": "batch", "data": {"k": k}} for k in range(n)]}


async def remove_inputs(api: Api, token: str, world: World, n: int) -> dict:
    made = await add_to_collection_inputs(api, token, world, n, "emptied")
    await api.data("AddToCollection", made, token=token)
    return {"collectionId": made["input"]["collectionId"], "assetIds": [item["assetId"] for item in made["input"]["items"]]}


async def archive_inputs(api: Api, token: str, world: World, n: int) -> dict:
    made = await api.data("LogEvents", await events_inputs(api, token, world, n), token=token)
    return {"ids": made["logEvents"]["ids"]}


async def aliases_inputs(api: Api, token: str, world: World, n: int) -> dict:
    return {"assetId": (await fresh_assets(api, token, 1, f"al{n}"))[0], "aliases": [f"al{n}-{k}" for k in range(n)]}


async def external_inputs(api: Api, token: str, world: World, n: int) -> dict:
    assert world.s3 is not None
    client = world.s3.client()
    for k in range(n):
        client.put_object(Bucket=world.s3.bucket, Key=f"np/{n}/{k}.csv", Body=f"{k}\n".encode())
    return {"input": {"mount": "lab", "bucket": world.s3.bucket, "prefix": f"np/{n}/",
                      "collectionId": world.ids["collection"][0]}}


async def ingest_inputs(api: Api, token: str, world: World, n: int) -> dict:
    assert world.root is not None
    files = [world.root / f"{n}-{k}.txt" for k in range(n)]
    for k, file in enumerate(files):
        file.write_bytes(f"{n} {k}".encode())
    return {"inputs": [{"source": str(file), "sizeBytes": file.stat().st_size, "collectionId": world.ids["collection"][0],
                        "path": file.name} for file in files]}


MUTATIONS: dict[str, Mutation] = {
    "registerExternal": Mutation(
        "mutation Probe($input: RegisterExternalInput!) { registerExternal(input: $input) { count "
        "assets { id status collections(first: 5) { totalCount edges { node { name } } } } } }",
        external_inputs, lambda data, n: data["registerExternal"]["count"] == n == len(data["registerExternal"]["assets"])),
    "ingestFiles": Mutation(
        "mutation Probe($inputs: [IngestFileInput!]!) { ingestFiles(inputs: $inputs) { unchanged "
        "asset { id status sha256 collections(first: 5) { totalCount edges { node { name } } } } } }",
        ingest_inputs, lambda data, n: len(data["ingestFiles"]) == n and all(d["asset"]["sha256"] for d in data["ingestFiles"])),
    "removeFromCollection": Mutation(
        "mutation Probe($collectionId: ID!, $assetIds: [ID!]!) { removeFromCollection(collectionId: $collectionId, "
        "assetIds: $assetIds) { itemCount } }", remove_inputs, lambda data, n: data["removeFromCollection"]["itemCount"] == 0),
    "archiveEvents": Mutation(
        "mutation Probe($ids: [ID!]!) { archiveEvents(ids: $ids, archived: true) }", archive_inputs,
        lambda data, n: data["archiveEvents"] == n),
    "addAliases": Mutation(
        "mutation Probe($assetId: ID!, $aliases: [String!]!) { addAliases(assetId: $assetId, aliases: $aliases) { aliases } }",
        aliases_inputs, lambda data, n: len(data["addAliases"]["aliases"]) == n),
    "createDatums": Mutation(
        "mutation Probe($inputs: [CreateDatumInput!]!) { createDatums(inputs: $inputs) { id roles { asset { id name } } "
        "annotations(first: 5) { totalCount } } }", create_datums_inputs, lambda data, n: len(data["createDatums"]) == n),
    "addAnnotations": Mutation(
        "mutation Probe($setId: ID!, $records: [AnnotationRecordInput!]!) { addAnnotations(setId: $setId, records: $records) "
        f"{{ records {{ id {RECORD} }} }} }}", add_annotations_inputs, lambda data, n: len(data["addAnnotations"]["records"]) == n),
    "verifyAnnotations": Mutation(
        f"mutation Probe($ids: [ID!]!) {{ verifyAnnotations(ids: $ids, verified: true) {{ id {RECORD} }} }}",
        verify_inputs, lambda data, n: len(data["verifyAnnotations"]) == n),
    "addToCollection": Mutation(
        "mutation Probe($input: AddToCollectionInput!) { addToCollection(input: $input) { itemCount "
        "items(first: 20) { edges { node { asset { id aliases } } } } } }",
        add_to_collection_inputs, lambda data, n: len(edges(data["addToCollection"]["items"])) == n),
    "createUploads": Mutation(
        "mutation Probe($inputs: [CreateUploadInput!]!) { createUploads(inputs: $inputs) { id url headers "
        "asset { id status collections(first: 5) { edges { node { name } } } } } }",
        create_uploads_inputs, lambda data, n: len(data["createUploads"]) == n),
    "completeUploads": Mutation(
        "mutation Probe($ids: [ID!]!) { completeUploads(ids: $ids) { failures { code message } "
        "assets { id status sha256 collections(first: 5) { totalCount edges { node { name } } } } } }",
        complete_uploads_inputs, lambda data, n: len(data["completeUploads"]["assets"]) == n),
    "storeText(derivedFrom)": Mutation(
        "mutation Probe($input: StoreTextInput!) { storeText(input: $input) { derivedFrom { id aliases } } }",
        derived_inputs, lambda data, n: len(data["storeText"]["derivedFrom"]) == n),
    "createDatasetVersion": Mutation(
        "mutation Probe($input: CreateDatasetVersionInput!) { createDatasetVersion(input: $input) { datumCount "
        "annotationSets { name } datums(first: 20) { edges { node { id annotations(first: 5) { edges { node { id } } } } } } } }",
        version_inputs, lambda data, n: len(edges(data["createDatasetVersion"]["datums"])) == n),
    "logEvents": Mutation(
        "mutation Probe($inputs: [EventInput!]!) { logEvents(inputs: $inputs) { count ids } }",
        events_inputs, lambda data, n: len(data["logEvents"]["ids"]) == n),
}


@dataclass
class Measured:
    small: Counter[str]
    large: Counter[str]


async def commands(api: Api, served: Served, token: str, query: str, variables: dict) -> tuple[Counter[str], dict]:
    await run(api, token, "query Probe { me { role } }")  # the token's lookup, remembered, is not the query's
    served.commands.clear()
    data = await run(api, token, query, variables)
    return served.commands.tally(), data


async def measure_reads(api: Api, served: Served, token: str, world: World, n: int) -> dict[str, Counter[str]]:
    counted = {}
    for name, case in CASES.items():
        query = case.query if isinstance(case.query, str) else case.query(world)
        counted[name], data = await commands(api, served, token, query, case.variables(world))
        parents = case.parents(data)
        assert len(parents) == n * case.per_unit, (name, parents)
        assert all(case.ok(parent) for parent in parents), (name, parents)
    return counted


async def measure_mutations(api: Api, served: Served, token: str, world: World, n: int) -> dict[str, Counter[str]]:
    counted = {}
    for name, mutation in MUTATIONS.items():
        variables = await mutation.prepare(api, token, world, n)
        counted[name], data = await commands(api, served, token, mutation.query, variables)
        assert mutation.done(data, n), (name, data)
    return counted


@pytest.fixture(scope="module")
async def measured(served: Served, settings: Settings, s3: S3Service,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Measured]]:
    """Every case's commands at SMALL and at LARGE parents, from one world grown between the two."""
    await wipe(served)
    _, token = await create_token("np-admin", Role.ADMIN)
    world = World(s3=s3, root=tmp_path_factory.mktemp("ingest"))
    settings.ingest_roots = [world.root]
    try:  # the settings are the session's: no later test ingests from here, whatever fails
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served.app), base_url="http://graphlake.test") as http:
            api = Api(http)
            for i in range(SMALL):
                await add_unit(api, token, world, i)
            world.whole = await whole_version(api, token, world)
            small = await measure_reads(api, served, token, world, SMALL)
            for i in range(SMALL, LARGE):
                await add_unit(api, token, world, i)
            world.whole = await whole_version(api, token, world)
            large = await measure_reads(api, served, token, world, LARGE)
            small |= await measure_mutations(api, served, token, world, SMALL)
            large |= await measure_mutations(api, served, token, world, LARGE)
    finally:
        settings.ingest_roots = []
    yield {name: Measured(small[name], large[name]) for name in small}


@pytest.mark.parametrize("case", [*CASES, *MUTATIONS])
async def test_a_field_under_a_page_of_parents_costs_the_same_commands_at_any_size(
        measured: dict[str, Measured], case: str) -> None:
    counts = measured[case]
    changed = {command: (counts.small[command], counts.large[command]) for command in counts.small | counts.large
               if counts.small[command] != counts.large[command]}
    assert counts.small == counts.large, f"{case}: commands (at {SMALL}, at {LARGE} parents) that changed: {changed}"


async def test_aliases_of_a_field_by_name_read_once(measured: dict[str, Measured]) -> None:
    """`version(version:)` three times under aliases on each dataset of a page (two it has, one it
    lacks): one read of versions, not one for each name asked."""
    assert measured["Dataset.version(aliased)"].large["find dataset_versions"] == 1
