"""graphql/ is the contract: the committed schema equals the code's, and every operation is valid."""

from __future__ import annotations

from graphql import parse, validate

from graphlake import PROJECT_ROOT
from resolvers.schema import build_schema
from tests.operations import OPERATIONS_DIR, operations


def test_committed_schema_matches_the_code() -> None:
    committed = (PROJECT_ROOT / "graphql" / "schema.graphql").read_text()
    assert committed == build_schema().as_str() + "\n", "run `graphlake export-schema` and commit the result"


def test_every_operation_is_valid() -> None:
    schema = build_schema()._schema
    assert operations(), "graphql/operations/ holds no operations"
    for path in sorted(OPERATIONS_DIR.glob("*.graphql")):
        errors = validate(schema, parse(path.read_text()))
        assert not errors, f"{path.name}: {errors}"


def test_graphql_dir_holds_no_python() -> None:
    # A package named `graphql` would shadow graphql-core.
    assert not list((PROJECT_ROOT / "graphql").rglob("*.py"))
