"""The named operations in graphql/operations/, and a small client that runs them through the app.

Tests send only these documents, so every one of them stays valid against the schema.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx
from bson import ObjectId
from graphql import OperationDefinitionNode, parse, print_ast, separate_operations

from graphlake import PROJECT_ROOT
from services.node_ids import split_id

OPERATIONS_DIR = PROJECT_ROOT / "graphql" / "operations"


@cache
def operations() -> dict[str, str]:
    """Operation name -> the text of the file that holds it (fragments included)."""
    found: dict[str, str] = {}
    for path in sorted(OPERATIONS_DIR.glob("*.graphql")):
        text = path.read_text()
        for definition in parse(text).definitions:
            if isinstance(definition, OperationDefinitionNode) and definition.name:
                name = definition.name.value
                assert name not in found, f"operation {name} is defined twice"
                found[name] = text
    return found


def object_id(global_id: str) -> ObjectId:
    """The database id inside a global ID, for checking stored state directly."""
    return ObjectId(split_id(global_id)[1])


@cache
def document(name: str) -> str:
    """The named operation with just the fragments it uses, as a GraphQL client sends it (the
    whole file would make the server parse and validate every other operation in it too)."""
    return print_ast(separate_operations(parse(operations()[name]))[name])


class Api:
    """Runs named operations over HTTP against the app."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def run(
        self, operation: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
        query: str | None = None, status: int = 200,
    ) -> dict[str, Any]:
        """The whole response body. `query` sends an ad-hoc document instead (limit tests)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": query or document(operation), "operationName": operation, "variables": variables or {}}
        response = await self.http.post("/graphql", json=body, headers=headers)
        assert response.status_code == status, response.text
        return response.json()

    async def data(self, operation: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> dict:
        body = await self.run(operation, variables, token=token)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error(
        self, operation: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
        query: str | None = None, status: int = 200,
    ) -> dict[str, Any]:
        """The single error the operation must fail with (UNAVAILABLE ones come with HTTP 503)."""
        body = await self.run(operation, variables, token=token, query=query, status=status)
        errors = body.get("errors") or []
        assert len(errors) == 1, body
        return errors[0]
