"""Plain leaf fields completed without graphql-core's per-field machinery.

Most fields of a big read are plain attributes with a scalar or enum type: a record's kind, label
and score, a box's x, y, width and height, every `id` and `__typename`. For each one graphql-core
builds a resolve-info object, calls Strawberry's resolver wrappers (which call `getattr`), checks
whether the result is awaitable and walks `complete_value`'s type dispatch. A page of a version's
datums (100 datums, 1,000 records) completes some 13,000 fields, most of them such leaves, and that
machinery was the largest part of the server's CPU for it (bench/exchange.py's COCO export).

For a field Strawberry itself resolves with `getattr` (a "basic" field: no resolver, no field
extension, no arguments) whose type is a scalar or an enum, this executor reads the attribute and
coerces it exactly as graphql-core's `complete_leaf_value` does. Anything else, and anything that
goes wrong on the way (a null in a non-null field, a value the type refuses), takes graphql-core's
own path, which reports it as it always has. With an extension that wraps every resolver (tracing's
spans), every field takes the usual path.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLField, GraphQLObjectType, is_leaf_type, is_non_null_type
from graphql.pyutils import Undefined

from resolvers.internals import StrawberryGraphQLCoreExecutionContext, strawberry_field

_PLAIN = "graphlake-plain-leaf"  # the cached answer, in the field's own extensions: (attribute, leaf type, non-null) or None


def _plain_leaf(field: GraphQLField) -> tuple[str, Any, bool] | None:
    """How to complete `field` here, if it is a plain leaf: its attribute, its leaf type, whether non-null."""
    if _PLAIN not in field.extensions:
        definition = strawberry_field(field)
        field_type, plain = field.type, None
        non_null = is_non_null_type(field_type)
        leaf = field_type.of_type if non_null else field_type
        if definition is not None and definition.is_basic_field and not field.args and is_leaf_type(leaf):
            plain = (definition.python_name, leaf, non_null)
        field.extensions[_PLAIN] = plain
    return field.extensions[_PLAIN]


class PlainLeafExecutor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self._plain_leaves = not (manager is not None and manager.middlewares)

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any,
                      position_context: Any) -> Any:
        if self._plain_leaves:
            node = field_details_list[0].node
            name = node.name.value
            if name == "__typename":
                return parent_type.name
            field = self.schema.get_field(parent_type, name)
            plain = _plain_leaf(field) if field is not None and not node.arguments else None
            if plain is not None:
                attribute, leaf, non_null = plain
                try:
                    value = getattr(source, attribute)
                    if value is None:
                        if not non_null:
                            return None
                    else:
                        coerced = leaf.coerce_output_value(value)
                        if coerced is not Undefined and coerced is not None:
                            return coerced
                except Exception:  # the usual path below reports it, located at this field
                    pass
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
