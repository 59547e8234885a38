"""Every GraphQL document the Python client sends (graphlake_client/operations.py) is valid against the
committed schema: the client holds its own strings rather than graphql/operations/, so nothing else
would catch a field it asks for that the schema renamed or never had."""

from __future__ import annotations

import pytest
from graphql import build_schema, parse, validate

from graphlake import PROJECT_ROOT
from graphlake_client import operations

SCHEMA = build_schema((PROJECT_ROOT / "graphql" / "schema.graphql").read_text())
DOCUMENTS = {name: value for name, value in vars(operations).items()
             if name.isupper() and isinstance(value, str) and value.lstrip().startswith(("query", "mutation", "subscription", "{"))}


def test_the_client_has_documents() -> None:
    assert {"CREATE_UPLOADS", "ADD_ANNOTATIONS", "VERSION_DATUMS"} <= DOCUMENTS.keys()


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_client_operation_is_valid(name: str) -> None:
    problems = validate(SCHEMA, parse(DOCUMENTS[name]))
    assert not problems, f"{name}: {[p.message for p in problems]}"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_client_operation_has_a_name(name: str) -> None:
    """The server's metrics and logs tell operations apart by name (an unnamed one is `anonymous`):
    each is named after its constant, CREATE_UPLOADS as CreateUploads."""
    [operation] = parse(DOCUMENTS[name]).definitions
    assert operation.name is not None and operation.name.value == name.title().replace("_", ""), DOCUMENTS[name][:80]


def test_each_document_is_named_once() -> None:
    """A second assignment to a name silently replaces the first for every module that uses it: two
    branches once each added a STORE_VALUE, and the verbs got the bundles' three fields."""
    import ast
    import collections
    from pathlib import Path

    tree = ast.parse(Path(operations.__file__).read_text())
    names = [target.id for node in tree.body if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Name)]
    assert [name for name, count in collections.Counter(names).items() if count > 1] == []


def test_every_document_is_sent_by_the_client() -> None:
    """A document no module sends is kept valid here for nothing, and reads as a verb the client
    has: VERSION_VERIFICATION stayed from the bundles' first draft, sent by none."""
    import re
    from pathlib import Path

    client = Path(operations.__file__).parent
    names = {name for name, value in vars(operations).items() if name.isupper() and isinstance(value, str)}
    own = Path(operations.__file__).read_text()  # a fragment (ASSET_FIELDS, say) is used by the documents
    elsewhere = "\n".join(path.read_text() for path in client.glob("*.py") if path.name != "operations.py")
    unused = sorted(name for name in names
                    if not re.search(rf"\b{name}\b", elsewhere) and len(re.findall(rf"\b{name}\b", own)) < 2)
    assert unused == []
