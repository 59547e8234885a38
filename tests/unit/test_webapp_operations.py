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


def test_every_webapp_operation_is_used() -> None:
    """An operation the app never sends is checked and generated for nothing, and reads as a feature
    it has: AbortUpload was kept, though the app has no way to abort an upload (a failed one resumes)."""
    import re

    code = "\n".join(path.read_text() for path in (PROJECT_ROOT / "webapp" / "src").rglob("*.ts*")
                     if "generated" not in path.parts)
    documents = "\n".join(path.read_text() for path in sorted(OPERATIONS.glob("*.graphql")))
    unused = [name for kind, name in re.findall(r"^(query|mutation|subscription)\s+(\w+)", documents, re.M)
              if not re.search(rf"\b{name}Document\b", code)]
    unused += [name for name in re.findall(r"^fragment\s+(\w+)", documents, re.M)
               if not re.search(rf"\.\.\.\s*{name}\b", documents)]
    assert unused == []
