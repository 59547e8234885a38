"""Limits the schema enforces by itself (depth, introspection, field suggestions, their defaults), and the
memo of validated documents; no server. Limits exceeded through the API: tests/test_limits.py."""

from __future__ import annotations

import pytest
from graphql import (
    OverlappingFieldsCanBeMergedRule,
    Source,
    TokenKind,
    get_introspection_query,
    parse,
    specified_rules,
    validate,
)
from graphql.language import Lexer

from graphlake.settings import Settings
from resolvers.document_cache import MAX_TEXT, DocumentMemo, token_key
from resolvers.document_limits import count_expanded, count_selections, merge_rule
from resolvers.internals import graphql_schema
from resolvers.schema import build_schema
from tests.operations import document, operations


async def test_documents_are_validated_once_and_limits_still_hold(settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """resolvers/document_cache.py: a repeated document skips parsing and validation, and a
    refused one is refused again, with the same error."""
    import strawberry.schema.schema as strawberry_schema

    validations: list[str] = []
    validate = strawberry_schema.validate

    def counting(schema, document, rules):
        validations.append(document.definitions[0].name.value if document.definitions[0].name else "")
        return validate(schema, document, rules)

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    shallow = build_schema(settings.model_copy(update={"max_query_depth": 2}))
    for _ in range(3):
        deep = await shallow.execute("query Deep { apiTokens { edges { node { name } } } }")
        assert [e.message for e in deep.errors] == [
            "'Deep' exceeds maximum operation depth of 2 (the server's limit: GRAPHLAKE_MAX_QUERY_DEPTH)"]
        ok = await shallow.execute("query Fine { __typename }")
        assert not ok.errors and ok.data == {"__typename": "Query"}
    assert sorted(validations) == ["Deep", "Fine"]  # once each, not three times


async def test_field_suggestions_hidden_only_without_introspection(settings: Settings) -> None:
    typo = "{ helth { ok } }"
    open_schema = build_schema(settings)
    message = (await open_schema.execute(typo)).errors[0].message
    assert "Did you mean" in message

    closed = build_schema(settings.model_copy(update={"introspection": False}))
    result = await closed.execute(typo)
    assert "Did you mean" not in result.errors[0].message
    assert "helth" in result.errors[0].message
    assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"
    introspection = await closed.execute("{ __schema { types { name } } }")
    assert introspection.errors and "introspection" in introspection.errors[0].message.lower()
    # An unknown enum value lists the allowed ones only where suggestions are given.
    enum = "{ events(filter: {minLevel: WARN}) { totalCount } }"
    assert "Allowed: DEBUG, INFO, WARNING" in (await open_schema.execute(enum)).errors[0].message
    assert "Allowed" not in (await closed.execute(enum)).errors[0].message


def test_document_memo_is_bounded_by_text() -> None:
    memo = DocumentMemo(max_total_text=1000)
    texts = [f"{{ a{i}: __typename }}".ljust(300) for i in range(5)]
    for text in texts:
        memo.put(text, parse(text), ())
    assert list(memo.texts.entries) == texts[-3:] and memo.texts.total_text == 900  # the oldest went first
    memo.get(texts[2])  # used: now the most recent
    memo.put(texts[0], parse(texts[0]), ())
    assert list(memo.texts.entries) == [texts[4], texts[2], texts[0]]  # texts[3] was the least recently used
    huge = "{ __typename }" + " " * MAX_TEXT
    memo.put(huge, parse(huge), ())
    assert huge not in memo.texts.entries


def test_the_token_key_ignores_layout_and_comments_only() -> None:
    """resolvers/document_cache.py: a document's validity is remembered by its tokens."""
    plain = token_key(parse('query Q($a: Int = 1) { f(s: "x y", b: """z""") { g } }'))
    laid_out = token_key(parse('# who: job 42\nquery Q(\n  $a: Int = 1,\n) {\n  f(s: "x y", b: """\n    z\n""") { g } # why\n}'))
    assert plain == laid_out
    for other in ('query Q($a: Int = 2) { f(s: "x y", b: """z""") { g } }',  # a value
                  'query Q($a: Int = 1) { f(s: "x y", b: "z") { g } }',  # a block string is another token
                  'query Q($a: Int = 1) { f(s: "x\\ny", b: """z""") { g } }',  # what a string holds
                  'query Q($a: Int = 1) { f(s: "x y", b: """z""") { g h } }'):
        assert token_key(parse(other)) != plain, other


def _tokens(text: str) -> int:
    lexer, count = Lexer(Source(text)), 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


def test_every_operation_and_graphiqls_introspection_fit_the_default_limits() -> None:
    """GRAPHLAKE_MAX_TOKENS, _MAX_SELECTIONS and _MAX_MERGE_COST are sized so what we send passes, with room."""
    defaults = Settings(_env_file=None)
    schema = graphql_schema(build_schema(defaults))
    rules = [merge_rule(defaults.max_merge_cost) if rule is OverlappingFieldsCanBeMergedRule else rule
             for rule in specified_rules]
    documents = {name: document(name) for name in operations()}
    # What GraphiQL asks for (graphql-js's query with these options has the same fields, give or take two).
    documents["introspection"] = get_introspection_query(descriptions=True, specified_by_url=True,
                                                          directive_is_repeatable=True, schema_description=True,
                                                          input_value_deprecation=True)
    for name, text in documents.items():
        parsed = parse(text)
        assert _tokens(text) <= defaults.max_tokens // 5, name
        assert count_selections(parsed, defaults.max_selections) <= defaults.max_selections // 3, name
        assert validate(schema, parsed, rules) == [], name


def test_selections_are_counted_once_per_fragment_and_the_count_stops_early() -> None:
    text = "query Q { a { b c ...F } ... on Query { d } } fragment F on T { e f { g } }"
    assert count_selections(parse(text), 100) == 9  # a b c ...F, ...on Query d, e f g
    assert 3 < count_selections(parse(text), 3) < 9  # stops once over: enough to refuse


def test_fragments_are_counted_where_spread_each_counted_once() -> None:
    text = "query Q { a ...F ...F } fragment F on T { b c ...G ...G } fragment G on T { d }"
    assert count_expanded(parse(text), 1000) == 1 + 2 * (1 + 2 + 2 * (1 + 1))  # a, then each ...F with what it holds
    levels = " ".join(f"fragment F{n} on Query {{ " + " ".join([f"...F{n + 1}"] * 5) + " }" for n in range(40))
    bomb = parse("query B { ...F0 } " + levels + " fragment F40 on Query { x }")
    assert 3000 < count_expanded(bomb, 3000) < 10**6  # 5^40 written out; counted in one pass, stopping once over
    assert count_expanded(parse("query C { ...A } fragment A on Q { ...A x }"), 100) == 3  # a cycle: refused later
