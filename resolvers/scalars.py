"""Custom scalars of the contract. `DateTime` is Strawberry's own (ISO-8601; we store UTC).

BigInt is a NewType of int, bound to its GraphQL definition in SCALAR_MAP (Strawberry's
`scalar_map`), so annotations stay plain ints to type checkers.
"""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.scalars import JSON

__all__ = ["JSON", "SCALAR_MAP", "BigInt"]

_INT64 = 2**63

BigInt = NewType("BigInt", int)


def _parse_bigint(value: object) -> int:
    # Accept a JSON number or a numeric string (JavaScript clients lose precision above 2^53).
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"BigInt must be an integer, got {type(value).__name__}")
    number = int(value)
    if not -_INT64 <= number < _INT64:
        raise ValueError("BigInt must fit in 64 bits")
    return number


SCALAR_MAP = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A 64-bit integer (byte sizes), serialized as a JSON number.",
        serialize=int,
        parse_value=_parse_bigint,
    ),
}
