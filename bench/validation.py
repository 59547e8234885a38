"""Validation: the costliest documents the request limits let through, against GraphiQL's introspection query.

    .venv/bin/python bench/validation.py [--runs 5]

Validation runs on the event loop, so a document's validation time is how long every other request
waits. Builds, from the default settings, the worst documents found for each cost (#16):
  repeated fields   one field over and over (OverlappingFieldsCanBeMerged compares every pair),
                    plain, aliased, through fragments, and with arguments;
  selections        as many distinct selections as GRAPHLAKE_MAX_SELECTIONS allows (every rule visits each);
  literals          an argument holding as many list items or objects as GRAPHLAKE_MAX_TOKENS allows;
  the issue's       14 KB of `me { role }`, refused at the token limit while parsing;
and times schema validation of each (CPU time, best of N: the machine is shared) through the schema's
own extensions, as a request meets them, then prints each against the introspection query, the
largest document a client commonly sends. No server or database: this is CPU work only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import strawberry.schema.schema as strawberry_schema
from graphql import get_introspection_query, get_named_type, is_leaf_type, is_non_null_type, is_object_type

from graphlake.settings import Settings
from resolvers.internals import graphql_schema
from resolvers.schema import build_schema


def distinct_selections(schema, count: int) -> str:
    """`count` selections, none repeating a response name, walking the schema from Query (no arguments needed)."""
    left = [count]

    def walk(type_, depth: int) -> str:
        parts = []
        for name, field in type_.fields.items():
            if left[0] <= 0:
                break
            if any(is_non_null_type(a.type) for a in field.args.values()):
                continue
            named = get_named_type(field.type)
            if is_leaf_type(named):
                left[0] -= 1
                parts.append(name)
            elif is_object_type(named) and depth < 10:
                left[0] -= 1
                inner = walk(named, depth + 1)
                if inner:
                    parts.append(f"{name} {{ {inner} }}")
                else:
                    left[0] += 1
        return " ".join(parts)

    return "{ " + walk(schema.query_type, 0) + " }"


def documents(settings: Settings) -> dict[str, str]:
    selections, tokens = settings.max_selections, settings.max_tokens
    thirds = selections // 3
    return {
        "repeated field": "{ " + "me { role } " * (selections // 2) + "}",
        "repeated, aliased": "{ " + "a: me { role } " * (selections // 2) + "}",
        "repeated in fragments": "{ " + " ".join(f"...F{i}" for i in range(thirds)) + " } "
                                 + " ".join(f"fragment F{i} on Query {{ me {{ role }} }}" for i in range(thirds)),
        "repeated, arguments": "{ " + "assets(first: 1) { totalCount } " * (selections // 2) + "}",
        "distinct selections": distinct_selections(graphql_schema(build_schema(settings)), selections),
        "literal list": "{ assets(filter: {labelsAny: [" + ", ".join(['"a"'] * (tokens - 16)) + "]}) { totalCount } }",
        "literal objects": "{ assets(filter: {metadata: ["
                           + ", ".join(['{path: "a", op: EQ, value: 1}'] * (tokens // 11 - 2)) + "]}) { totalCount } }",
        # Spend the merge budget with few tokens, then the rest of the tokens on a literal.
        "repeated + literal": "{ " + "me { role } " * 75 + "assets(filter: {labelsAny: ["
                              + ", ".join(['"a"'] * (tokens - 320)) + "]}) { totalCount } }",
        "the issue's 14 KB": "{ " + "me { role } " * 1200 + "}",
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = Settings(_env_file=None)
    spent: list[float] = []
    validate = strawberry_schema.validate

    def timed(*arguments):
        started = time.process_time()
        try:
            return validate(*arguments)
        finally:
            spent.append(time.process_time() - started)

    strawberry_schema.validate = timed
    # No request, so no caller to refuse (a member's limits apply); documents that pass validation end
    # at their first resolver, which finds no context: execution is not measured.
    logging.getLogger("graphlake.errors").setLevel(logging.CRITICAL)

    async def measure(text: str) -> tuple[float, float, str]:
        """Best validation and whole-request CPU times over the runs, and the first error."""
        best_validation = best_request = float("inf")
        first_error = ""
        for _ in range(args.runs):
            schema = build_schema(settings)  # a fresh document memo: every run validates
            spent.clear()
            started = time.process_time()
            result = await schema.execute(text)
            best_request = min(best_request, time.process_time() - started)
            best_validation = min(best_validation, sum(spent))
            first_error = result.errors[0].message if result.errors else ""
        return best_validation, best_request, first_error

    baseline, _, _ = await measure(get_introspection_query(True, True, True, True, True))
    print(f"limits: {settings.max_tokens} tokens, {settings.max_selections} selections, merge cost {settings.max_merge_cost}")
    print(f"{'introspection query':24} validation {baseline * 1000:6.1f} ms  (the baseline)")
    worst = 0.0
    for name, text in documents(settings).items():
        validation, request, error = await measure(text)
        worst = max(worst, validation)
        outcome = f"refused: {error[:60]}" if error and "Internal" not in error else "passes"
        print(f"{name:24} validation {validation * 1000:6.1f} ms  {validation / baseline:5.2f}x  "
              f"(parse to answer {request * 1000:6.1f} ms)  {len(text):6} bytes  {outcome}")
    print(f"worst validation under the limits: {worst * 1000:.1f} ms of CPU ({worst / baseline:.2f}x introspection); "
          "target: well under 100 ms")


if __name__ == "__main__":
    asyncio.run(main())
