"""The web app's GraphQL documents (webapp/src/operations/) are valid against the committed schema,
as tests/unit/test_schema_contract.py checks graphql/operations/: a field the schema renamed fails
here, in the suite, and not only at the app's next build (its code generator checks them too)."""

from __future__ import annotations

from graphql import build_schema, parse, validate

from graphlake import PROJECT_ROOT

OPERATIONS = PROJECT_ROOT / "webapp" / "src" / "operations"


def test_webapp_operations_are_valid() -> None:
    schema = build_schema((PROJECT_ROOT / "graphql" / "schema.graphql").read_text())
    files = sorted(OPERATIONS.glob("*.graphql"))
    assert files, f"no operations in {OPERATIONS}"
    # One document, as the code generator reads them: a fragment may be used from another file.
    document = parse("\n".join(path.read_text() for path in files))
    errors = validate(schema, document)
    assert not errors, [e.message for e in errors]
    names = [d.name.value for d in document.definitions if getattr(d, "name", None)]
    assert len(names) == len(set(names)), "an operation or fragment name is defined twice"
