"""Every GraphQL block in the README is valid against the committed schema, as a user pastes it into
GraphiQL: a field or argument renamed in the schema, or a block of several operations some of which
have no name (GraphiQL then refuses the whole block), fails here rather than in front of a reader."""

from __future__ import annotations

import re

import pytest
from graphql import build_schema, parse, validate

from graphlake import PROJECT_ROOT

SCHEMA = build_schema((PROJECT_ROOT / "graphql" / "schema.graphql").read_text())
README = (PROJECT_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```graphql\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_has_graphql_blocks() -> None:
    assert len(BLOCKS) >= 10  # else the pattern no longer finds them, and the test below checks nothing


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{n}" for n in range(len(BLOCKS))])
def test_a_readme_block_is_valid(block: str) -> None:
    problems = validate(SCHEMA, parse(block))
    assert not problems, f"{[p.message for p in problems]} in:\n{block}"
