"""Custom scalars of the contract. `DateTime` is Strawberry's own (ISO-8601; we store UTC).

BigInt is a NewType of int, bound to its GraphQL definition in SCALAR_MAP (Strawberry's
`scalar_map`), so annotations stay plain ints to type checkers.
"""

from __future__ import annotations

import re
from typing import NewType

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

__all__ = ["JSON", "SCALAR_MAP", "BigInt"]

_INT64 = 2**63
_DIGITS = re.compile(r"[+-]?[0-9]+")

BigInt = NewType("BigInt", int)


def _parse_bigint(value: object) -> int:
    # Accept a JSON number or a numeric string (JavaScript clients lose precision above 2^53).
    # GraphQLError, not ValueError: graphql-core quotes a plain exception's text, which was Python's
    # own ("invalid literal for int() with base 10", "got dict", the digit limit of int()).
    if isinstance(value, str) and _DIGITS.fullmatch(value := value.strip()):
        if len(value.lstrip("+-")) > 20:  # before int(): it refuses over 4300 digits, in its own words
            raise GraphQLError("BigInt must fit in 64 bits")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphQLError("BigInt must be an integer, or a string of decimal digits")
    if not -_INT64 <= value < _INT64:
        raise GraphQLError("BigInt must fit in 64 bits")
    return value


SCALAR_MAP = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A 64-bit integer (byte sizes), serialized as a JSON number.",
        serialize=int,
        parse_value=_parse_bigint,
    ),
}
