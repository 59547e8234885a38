"""resolvers/validation_rules.py: a rule replaced once per rule list, the same list for every operation."""

from __future__ import annotations

from graphql import OverlappingFieldsCanBeMergedRule, ValuesOfCorrectTypeRule, specified_rules

from resolvers.document_limits import merge_rule
from resolvers.input_literals import NamedInputLiterals
from resolvers.validation_rules import replaced


def test_a_rule_is_replaced_where_it_stands_and_the_list_made_once() -> None:
    first = replaced(tuple(specified_rules), OverlappingFieldsCanBeMergedRule, merge_rule(50))
    assert len(first) == len(specified_rules)
    assert first[specified_rules.index(OverlappingFieldsCanBeMergedRule)] is merge_rule(50)
    assert OverlappingFieldsCanBeMergedRule not in first
    # The next operation's list is a new tuple of the same rules: the same replacement comes back.
    assert replaced(tuple(specified_rules), OverlappingFieldsCanBeMergedRule, merge_rule(50)) is first
    both = replaced(first, ValuesOfCorrectTypeRule, NamedInputLiterals)
    assert NamedInputLiterals in both and ValuesOfCorrectTypeRule not in both and merge_rule(50) in both


def test_a_list_without_the_rule_is_left_as_it_is() -> None:
    rules = (ValuesOfCorrectTypeRule,)
    assert replaced(rules, OverlappingFieldsCanBeMergedRule, merge_rule(50)) == rules
