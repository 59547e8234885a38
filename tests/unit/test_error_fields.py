"""The `field` of a variable-coercion error, read from graphql-core's words (it names the place in
prose only), in the wording of 3.3 (pinned) and of 3.2 (which pyproject.toml still allows)."""

from __future__ import annotations

import pytest

from resolvers.errors import variable_field


@pytest.mark.parametrize(("message", "field"), [
    ("Variable '$filter' has invalid value at .kinds[1]: Value 'BOGUS' does not exist in 'AssetKind' enum.",
     "filter.kinds[1]"),
    ("Variable '$records' has invalid value at [0].geometry: Within OneOf Input Object type ...", "records[0].geometry"),
    ("Variable '$first' has invalid value: Expected a value of non-null type 'Int!' to be provided.", "$first"),
    ("Variable '$input' got invalid value 'BOGUS' at 'input.policy'; Value 'BOGUS' does not exist in 'BundlePolicy'.",
     "input.policy"),
    ("Variable '$f' got invalid value 99999999999; Int cannot represent non 32-bit signed integer value.", "$f"),
    # A nullable variable, null, used where an argument is non-null (graphql-core names the variable only).
    ("Expected variable '$seed' provided to non-null type 'Int!' not to be None.", "$seed"),
    ("Cannot query field 'asets' on type 'Query'.", None),
])
def test_a_variable_error_names_its_place(message: str, field: str | None) -> None:
    assert variable_field(message) == field
