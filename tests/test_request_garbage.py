"""A request leaves none of the documents it loaded for the garbage collector: they are freed when it
ends. graphql-core's executor is a reference cycle that holds the request's context; the loaders'
caches on it kept every document of a nested read alive until a collection, which made the
collector the server's main work under load and its pauses the longest waits on /healthz
(bench/health.py)."""

from __future__ import annotations

import gc

from beanie import Document
from pydantic import BaseModel

from services.node_ids import NodeType, encode_id
from tests.operations import Api
from tests.seed import seed_version


async def test_a_nested_read_leaves_no_documents_in_reference_cycles(api: Api, viewer: str) -> None:
    version_id = encode_id(NodeType.DATASET_VERSION, await seed_version(20))
    variables = {"id": version_id, "first": 20}
    first = await api.data("VersionGraph", variables, token=viewer)  # warm: caches filled once are not garbage
    assert len(first["datasetVersion"]["datums"]["edges"]) == 20
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage, to look at
    try:
        for _ in range(3):
            again = await api.data("VersionGraph", variables, token=viewer)
            assert again == first
        gc.collect()
        models = [type(o).__name__ for o in gc.garbage if isinstance(o, BaseModel)]
        documents = sum(isinstance(o, Document) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not models, f"{len(models)} models (documents: {len(documents)}) were left in cycles, e.g. {models[:5]}"
