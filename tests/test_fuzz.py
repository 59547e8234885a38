"""A bounded fuzz pass over the whole API: operations generated from the schema (hypothesis-graphql),
valid ones and invalid ones, with hostile scalars (operator-shaped JSON, huge integers, odd dates),
sent with and without a token. No answer may be a 5xx, lack a code, be INTERNAL, or show Python's
internals. Cases are generated ahead of sending (hypothesis runs synchronously; the app runs on this
event loop) from a fixed seed, so a failure repeats; GRAPHLAKE_FUZZ_EXAMPLES sets how many per kind.
"""

from __future__ import annotations

import os
import re
from typing import Any

import graphql
import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from documents.roles import Role
from resolvers.schema import build_schema
from tests import factories
from tests.conftest import MakeToken
from tests.operations import Api

EXAMPLES = int(os.environ.get("GRAPHLAKE_FUZZ_EXAMPLES", "150"))
# What a message must never show: Python's own words for its objects and failures.
INTERNALS = re.compile(r"Traceback|File \"|object at 0x|NoneType|KeyError|TypeError|AttributeError|ValueError|"
                       r"pymongo|beanie|strawberry\.|bson\.|<class ")


def json_node(value: Any) -> graphql.ValueNode:
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([json_node(item) for item in value])
    return nodes.Object([graphql.ObjectFieldNode(name=graphql.NameNode(value=key), value=json_node(item))
                         for key, item in value.items()])


# Keys and strings a query builder might splice into a database filter.
_HOSTILE = st.sampled_from(["$where", "$gt", "$ne", "$regex", "$expr", "a.b", "_id", "__proto__"])
_KEYS = st.text("abcdefgh", min_size=1, max_size=5) | _HOSTILE
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=16) | _HOSTILE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=10,
)
SCALARS = {
    "JSON": _JSON.map(json_node),
    "BigInt": st.integers(min_value=-2**80, max_value=2**80).map(nodes.Int),
    "DateTime": (st.datetimes().map(lambda d: d.isoformat() + "Z") | st.text(max_size=12)).map(nodes.String),
}


def generate(mode: Mode, count: int, ids: list[str]) -> list[str]:
    """`count` documents; IDs are mostly those of real objects (`ids`), so operations reach past the
    id check into the resolvers, and sometimes any string."""
    schema = graphql.print_schema(build_schema()._schema)  # type: ignore[attr-defined]
    documents: list[str] = []
    scalars = {**SCALARS, "ID": (st.sampled_from(ids) | st.sampled_from(ids) | st.text(max_size=12)).map(nodes.String)}

    @settings(max_examples=count, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(from_schema(schema, custom_scalars=scalars, mode=mode))
    def collect(document: str) -> None:
        documents.append(document)

    collect()
    return documents


def problems(document: str, response: httpx.Response) -> list[str]:
    """What is wrong with the answer to `document` (nothing, for a good one)."""
    if response.status_code >= 500 and response.status_code != 503:
        return [f"HTTP {response.status_code}: {response.text[:300]}"]
    try:
        body = response.json()
    except ValueError:
        return [f"not JSON (HTTP {response.status_code}): {response.text[:300]}"]
    found = []
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code is None:
            found.append(f"no code: {error}")
        elif code in ("INTERNAL", "UNAVAILABLE"):
            found.append(f"{code}: {error}")
        if INTERNALS.search(error.get("message", "")):
            found.append(f"internals shown: {error['message'][:300]}")
    return found


async def fuzz(http: httpx.AsyncClient, documents: list[str], make_token: MakeToken | None) -> list[str]:
    """Send each document, as an ADMIN (a new one whenever a generated mutation revoked the last),
    or without a token."""
    token = await make_token(Role.ADMIN) if make_token else None
    failures = []
    for document in documents:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await http.post("/graphql", json={"query": document}, headers=headers)
        failures += [f"{problem}\n  in: {document[:400]}" for problem in problems(document, response)]
        if make_token and any((e.get("extensions") or {}).get("code") == "UNAUTHENTICATED"
                              for e in response.json().get("errors") or []):
            token = await make_token(Role.ADMIN)
    return failures


async def seed(api: Api, token: str) -> list[str]:
    """One object of each kind, linked as a lab's would be; their global IDs."""
    values = [await factories.value_asset(api, token, f"v{i}") for i in range(2)]
    collection = await factories.collection(api, token)
    datums = await factories.datums(api, token, 2)
    dataset = await factories.dataset(api, token)
    schema = await factories.schema(api, token)
    labels = await factories.annotation_set(api, token, schema["id"])
    version = await factories.version(api, token, dataset["id"], "v1", addDatums=[d["id"] for d in datums],
                                      addAnnotationSets=[labels["id"]])
    return [o["id"] for o in (*values, collection, *datums, dataset, schema, labels, version)]


async def test_generated_operations_get_clear_errors_and_never_a_5xx(http: httpx.AsyncClient, api: Api,
                                                                      make_token: MakeToken) -> None:
    ids = await seed(api, await make_token(Role.ADMIN))
    valid = generate(Mode.POSITIVE, EXAMPLES, ids)
    invalid = generate(Mode.NEGATIVE, EXAMPLES, ids)
    assert len(valid) == EXAMPLES and len(invalid) == EXAMPLES
    failures = (await fuzz(http, valid, make_token) + await fuzz(http, invalid, make_token)
                + await fuzz(http, valid[:50], None))
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:10])
