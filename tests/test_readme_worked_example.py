"""The README's worked example ("The data graph"), run as a reader runs it: each block in order,
its capitals (`IMG1`, `SCHEMA`, `LABEL`, ...) replaced by the IDs the blocks before gave back.
tests/unit/test_readme_operations.py checks the blocks are valid; this checks they do what the
text says (a training split with `verifiedOnly: true` once came back empty, since no block made a
ground-truth record to verify)."""

from __future__ import annotations

import re
from typing import Any

from graphql import OperationDefinitionNode, parse, print_ast, separate_operations

from graphlake import PROJECT_ROOT
from tests import factories
from tests.operations import Api

README = (PROJECT_ROOT / "README.md").read_text()
SECTION = README.split("## The data graph: a worked example", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"^```graphql\n(.*?)^```", SECTION, flags=re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"\"([A-Z][A-Z0-9]+)\"")  # two capitals at least: "C" is a unit


def operations() -> list[tuple[str | None, str]]:
    """(name, document) of each operation in the section, in the order a reader meets them."""
    found: list[tuple[str | None, str]] = []
    for block in BLOCKS:
        parsed = parse(block)
        named = separate_operations(parsed)
        for definition in parsed.definitions:
            assert isinstance(definition, OperationDefinitionNode)
            name = definition.name.value if definition.name else None
            found.append((name, print_ast(named[name]) if name else block))
    return found


async def run(api: Api, token: str, document: str, ids: dict[str, str]) -> dict[str, Any]:
    missing = {p for p in PLACEHOLDER.findall(document) if p not in ids}
    assert not missing, f"the README never says where {missing} come from:\n{document}"
    query = PLACEHOLDER.sub(lambda m: f'"{ids[m.group(1)]}"', document)
    response = await api.http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
    body = response.json()
    assert not body.get("errors"), f"{body['errors']} from:\n{document}"
    return body["data"]


async def test_the_worked_example_runs_as_written(api: Api, contributor: str) -> None:
    # Step 1's images are uploaded files in the README; any image asset does here.
    ids = {name: (await factories.image_asset(api, contributor, f"{name.lower()}.png"))["id"]
           for name in ("IMG1", "MASK1", "IMG2", "MASK2")}
    answers: dict[str, dict[str, Any]] = {}
    for name, document in operations():
        data = await run(api, contributor, document, ids)
        answers[name or next(iter(data))] = data
        if "createDatums" in data:
            ids["DATUM1"], ids["DATUM2"] = (d["id"] for d in data["createDatums"])
        if name == "CreateSchema":
            ids["SCHEMA"] = data["createAnnotationSchema"]["id"]
        if name == "CreateSets":
            ids["TRUTH"], ids["PREDS"] = data["truth"]["id"], data["preds"]["id"]
        if name == "AddLabels":
            ids["LABEL"] = data["addAnnotations"]["ids"][0]
        if name == "CreateDataset":
            ids["DATASET"] = data["createDataset"]["id"]
        if name == "FreezeVersion":
            ids["VERSION"] = data["createDatasetVersion"]["id"]

    assert answers["assets"]["assets"]["totalCount"] == 1  # the value, found by what is inside it
    assert answers["VerifyLabel"]["verifyAnnotations"][0]["verifiedAt"]
    frozen = answers["FreezeVersion"]["createDatasetVersion"]
    assert frozen["datumCount"] == 2
    assert {c["split"]: c["count"] for c in frozen["splitCounts"]} == {"TRAIN": 1, "VALIDATION": 0, "TEST": 1, "UNASSIGNED": 0}
    # As the text after AddLabels says: DATUM1's one label is verified; DATUM2 has none, so it is left out.
    split = answers["TrainingSplit"]["trainingSplit"]
    assert split["train"]["totalCount"] == 1 and split["train"]["edges"][0]["node"]["id"] == ids["DATUM1"]
    assert split["train"]["edges"][0]["node"]["asset"]["id"] == ids["IMG1"]
    assert split["validation"]["totalCount"] == 0 and split["test"]["totalCount"] == 0
    content = answers["datasetVersion"]["datasetVersion"]["content"]
    assert content["format"] and content["sizeBytes"] > 0 and content["downloadUrl"]
