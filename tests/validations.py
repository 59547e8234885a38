"""Counting the documents graphql-core validates, to show what is refused (or remembered) before validation."""

from __future__ import annotations

import pytest


def count_validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per document graphql-core validates from now on."""
    import strawberry.schema.schema as strawberry_schema

    validations: list[int] = []
    validate = strawberry_schema.validate
    monkeypatch.setattr(strawberry_schema, "validate", lambda *args: validations.append(1) or validate(*args))
    return validations
