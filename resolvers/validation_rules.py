"""An operation's validation rules with one of graphql-core's replaced by ours, made once per rule list.

Two extensions swap a rule for their own (DocumentLimits its bounded field-merging rule,
InputLiteralErrors its literal checks naming the argument's path), and each did it for every
operation by rebuilding the list of about 35 rules: about 30 us of each request's CPU, a few
percent of a by-id read, though every operation of a schema sends the same list (Strawberry starts
each from graphql-core's specified rules) and a memoized document is not validated at all. The
replacements are kept by rule list; there are only as many as configurations of the schema.
"""

from __future__ import annotations

from graphql import ASTValidationRule

Rules = tuple[type[ASTValidationRule], ...]

MAX_KEPT = 64  # distinct (list, rule, replacement) triples kept; a process sees a handful
_kept: dict[tuple[Rules, type[ASTValidationRule], type[ASTValidationRule]], Rules] = {}


def replaced(rules: Rules, old: type[ASTValidationRule], new: type[ASTValidationRule]) -> Rules:
    """`rules` with `old` replaced by `new` wherever it stands (the same tuple for the same arguments)."""
    key = (rules, old, new)
    found = _kept.get(key)
    if found is None:
        found = tuple(new if rule is old else rule for rule in rules)
        if len(_kept) < MAX_KEPT:
            _kept[key] = found
    return found
